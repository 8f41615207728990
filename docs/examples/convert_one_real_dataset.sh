#!/usr/bin/env bash
# Convert the real ScanNet v2 into a pmoe scene store, check it, and print its summary.
#
# Usage:  docs/examples/convert_one_real_dataset.sh RAW OUT [WORKERS]
#   RAW      ScanNet root you downloaded with the official script (after signing the ScanNet terms of use form):
#              RAW/scannetv2-labels.combined.tsv
#              RAW/scannetv2_{train,val,test}.txt        (from the ScanNet repository, Tasks/Benchmark/)
#              RAW/scans/sceneXXXX_YY/{_vh_clean_2.ply, _vh_clean_2.0.010000.segs.json, .aggregation.json, .txt}
#              RAW/scans_test/sceneXXXX_YY/{_vh_clean_2.ply, .txt}
#   OUT      output folder or fsspec URL (s3://bucket/pmoe needs `pip install s3fs`); the store is OUT/scannet.zarr
#   WORKERS  reader processes (default: all cores)
#
# Try it on synthetic data first:  pmoe synth scannet /tmp/raw_scannet --scenes 3
#                                  docs/examples/convert_one_real_dataset.sh /tmp/raw_scannet /tmp/pmoe 1
# Expect for the real dataset (estimates, docs/real-datasets.md): ~240M points, ~7 GB, ~20 min on one core.
set -euo pipefail

RAW=${1:?usage: $0 RAW OUT [WORKERS]}
OUT=${2:?usage: $0 RAW OUT [WORKERS]}
WORKERS=${3:-$(nproc)}
PMOE=${PMOE:-pmoe}                     # e.g. PMOE=/path/to/checkout/.venv/bin/pmoe

# 1. A quick smoke test: the first scene of each split into a throw-away store. Catches a wrong RAW layout, a
#    missing label table or missing split lists in seconds instead of after an hour.
SMOKE=$(mktemp -d)
trap 'rm -rf "$SMOKE"' EXIT
"$PMOE" convert scannet "$RAW" "$SMOKE" --limit 1 --workers 1 --strict

# 2. The real conversion. Resumable: if it is interrupted, run this script again and it continues where it
#    stopped (committed scenes are skipped). Unreadable scenes are skipped with a warning naming the file and are
#    listed in the summary; add --strict to stop at the first one instead.
#    Reader options (-O): align=false keeps the raw mesh frame instead of applying axisAlignment;
#    split_lists=DIR / labels_tsv=PATH when those files are not in RAW.
#    Changed an option since a previous run into the same OUT? Add --overwrite (resume does not compare options).
"$PMOE" convert scannet "$RAW" "$OUT" --workers "$WORKERS"

# 3. Validate everything a reader relies on (exit 1 with the first problem), then summarise.
"$PMOE" check "$OUT/scannet.zarr"
"$PMOE" info "$OUT/scannet.zarr"
