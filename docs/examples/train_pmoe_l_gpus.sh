#!/usr/bin/env bash
# Train Point-MoE-L (preset pmoe-l) jointly on the paper's five datasets with torchrun, using the reference
# hyper-parameters: global batch 16, AdamW weight decay 0.05, peak lr 0.002 (0.0006 for the transformer blocks),
# OneCycle with pct_start 0.05 (cosine), ~100 epochs.
#
# Usage:  docs/examples/train_pmoe_l_gpus.sh DATA RUN [GPUS_PER_NODE]
#   DATA  folder (or fsspec URL) with scannet.zarr, s3dis.zarr, structured3d.zarr, nuscenes.zarr, semantickitti.zarr
#         (or their .shard-K-of-N.zarr stores), made by `pmoe convert`
#   RUN   run folder (ckpt.pt, log.jsonl, tb/); must be on a file system every node sees
# Environment:
#   NNODES (default 1), HEAD (rendezvous host of node 0, multi-node only), EPOCHS (default 100),
#   GLOBAL_BATCH (default 16), LOADER_WORKERS (default 8), DRY_RUN=1 prints the command instead of running it.
# Multi-node: run this script on every node with the same NNODES and HEAD (or from an sbatch script via srun).
#
# The step arithmetic:
#   an epoch = one pass over the train scenes of all datasets (pmoe's default --samples-per-epoch = their sum, S);
#   steps per epoch = S / global batch;  --steps = EPOCHS * S / GLOBAL_BATCH.
#   The per-process batch is GLOBAL_BATCH / (NNODES * GPUS_PER_NODE), e.g. 16 / 8 GPUs = 2 scenes per GPU.
#   S is read from the stores below (`pmoe info --json`). With the official splits S is roughly
#   1,201 (ScanNet) + 204 (S3DIS, Areas 1-4 and 6) + ~18,000 (Structured3D rooms) + 28,130 (nuScenes key frames)
#   + 19,130 (SemanticKITTI scans) = ~66,700, so 100 epochs = 100 * 66,700 / 16 = ~417,000 steps.
#   To define a shorter "epoch" (e.g. to match another codebase's schedule), pass --samples-per-epoch and compute
#   --steps from it the same way. The OneCycle schedule spans exactly --steps: keep it unchanged when resuming.
set -euo pipefail

DATA=${1:?usage: $0 DATA RUN [GPUS_PER_NODE]}
RUN=${2:?usage: $0 DATA RUN [GPUS_PER_NODE]}
GPUS=${3:-8}
NNODES=${NNODES:-1}
EPOCHS=${EPOCHS:-100}
GLOBAL_BATCH=${GLOBAL_BATCH:-16}
LOADER_WORKERS=${LOADER_WORKERS:-8}
PMOE=${PMOE:-pmoe}
PYTHON=${PYTHON:-python}
DATASETS=scannet,s3dis,structured3d,nuscenes,semantickitti

WORLD=$((NNODES * GPUS))
if (( GLOBAL_BATCH % WORLD != 0 )); then
    echo "global batch $GLOBAL_BATCH is not divisible by $WORLD processes; use --accum or another GPU count" >&2
    exit 1
fi
PER_GPU=$((GLOBAL_BATCH / WORLD))

# S = train scenes over all five datasets, summed over each dataset's store and its shards.
S=0
IFS=, read -r -a NAMES <<< "$DATASETS"
for name in "${NAMES[@]}"; do
    stores=$("$PYTHON" -c "from pmoe_core.store import find_stores; print('\n'.join(find_stores('$DATA', '$name')))")
    [ -n "$stores" ] || { echo "no store for $name in $DATA (run pmoe convert $name RAW $DATA)" >&2; exit 1; }
    while read -r store; do
        n=$("$PMOE" info "$store" --json | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin)['splits'].get('train', {}).get('scenes', 0))")
        echo "$store: $n train scenes"
        S=$((S + n))
    done <<< "$stores"
done
STEPS=$(( (EPOCHS * S + GLOBAL_BATCH - 1) / GLOBAL_BATCH ))
echo "train scenes S=$S, epochs=$EPOCHS, global batch=$GLOBAL_BATCH -> --steps $STEPS ($((S / GLOBAL_BATCH)) steps/epoch); $WORLD processes x --batch-size $PER_GPU"

RESUME=()
[ -f "$RUN/ckpt.pt" ] && RESUME=(--resume)     # re-running the script continues the run exactly

if (( NNODES > 1 )); then
    LAUNCH=(torchrun --nnodes "$NNODES" --nproc_per_node "$GPUS" --rdzv_backend c10d
            --rdzv_endpoint "${HEAD:?set HEAD to the hostname of node 0}:29500" --rdzv_id "pmoe-l-$(basename "$RUN")")
else
    LAUNCH=(torchrun --standalone --nproc_per_node "$GPUS")
fi
CMD=("${LAUNCH[@]}" -m pmoe_cli train
     --preset pmoe-l --datasets "$DATASETS" --data "$DATA" --out "$RUN"
     --steps "$STEPS" --batch-size "$PER_GPU"
     --lr 0.002 --block-lr 0.0006 --weight-decay 0.05      # AdamW; OneCycle pct_start 0.05 is built in
     --amp auto --workers "$LOADER_WORKERS" --ckpt-every 1000 --log-every 50
     "${RESUME[@]}")

if [ "${DRY_RUN:-0}" = 1 ]; then
    printf '%q ' "${CMD[@]}"; echo
else
    exec "${CMD[@]}"
fi
