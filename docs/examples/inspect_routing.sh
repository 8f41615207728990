#!/usr/bin/env bash
# Inspect the routing of a trained Point-MoE checkpoint on validation scenes of several datasets, and list what it
# wrote (report.json, traces.h5, figures, expert-coloured PLYs).
#
# Usage:  docs/examples/inspect_routing.sh CKPT DATA [OUT] [SCENES_PER_DATASET] [DATASETS]
#   CKPT      ckpt.pt of `pmoe train` (a Point-MoE preset: pmoe-s, pmoe-l, pmoe-tiny)
#   DATA      folder holding <dataset>.zarr stores (or an fsspec URL)
#   OUT       output folder (default: route_inspect)
#   SCENES_PER_DATASET   scenes taken from each dataset's val split (default: 4)
#   DATASETS  comma-separated (default: scannet,semantickitti)
# Environment: DEVICE (default cpu; cuda on a GPU machine), THREADS (torch CPU threads, default 1).
set -euo pipefail

CKPT=${1:?usage: $0 CKPT DATA [OUT] [SCENES_PER_DATASET] [DATASETS]}
DATA=${2:?usage: $0 CKPT DATA [OUT] [SCENES_PER_DATASET] [DATASETS]}
OUT=${3:-route_inspect}
LIMIT=${4:-4}
DATASETS=${5:-scannet,semantickitti}
DEVICE=${DEVICE:-cpu}
THREADS=${THREADS:-1}
PMOE=${PMOE:-pmoe}

SPECS=()
IFS=, read -r -a NAMES <<< "$DATASETS"
for name in "${NAMES[@]}"; do
    SPECS+=("$DATA/$name.zarr::val")          # STORE::split = every scene of the split, cut by --limit
done

# All scenes are aggregated into one report; --layers all writes PLYs/affinity figures for every MoE layer
# (default: first encoder, deepest, last decoder). --no-probs keeps traces.h5 small on large scenes.
"$PMOE" route-inspect "$CKPT" "${SPECS[@]}" --limit "$LIMIT" --out "$OUT" --device "$DEVICE" --threads "$THREADS"

echo
echo "files written:"
find "$OUT" -type f | sort
echo
echo "per-layer mutual information between the top-1 expert and the dataset (bits), from report.json:"
python3 - "$OUT/report.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
for layer in report["layers"]:
    mi = (layer.get("mi") or {}).get("dataset") or {}
    print(f"  {layer['name']:<28} {mi.get('bits')}")
PY
