#!/usr/bin/env bash
# GPU check (issue #19): CUDA-marked tests, MoE layer at 100k/1M tokens (fp32, bf16), ptv3-base and pmoe-l bf16 train
# steps on ~100k points with peak memory, 200 steps of pmoe-tiny training + eval. Under ~8 minutes on one GPU.
# Results: $OUT/gpu_check.json and $OUT/gpu_check.txt ($OUT if set, else bench_out/). Exit 1 when a section failed.
#
#   bench/gpu_check.sh            # on a machine with a CUDA GPU
#   bench/gpu_check.sh --dry-run  # toy sizes on the CPU: proves the script end to end anywhere
#
# Python: $PYTHON if set, else the checkout's .venv, else python3 on PATH (needs pmoe installed with its dev extra).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${PYTHON:-}" ]]; then
  py="$PYTHON"
elif [[ -x .venv/bin/python ]]; then
  py=.venv/bin/python
else
  py=python3
fi
out="${OUT:-bench_out}"
mkdir -p "$out"
if [[ " $* " == *" --dry-run "* ]]; then  # toy sizes on a CPU, whose speed (a shared machine) is anyone's guess
  exec "$py" bench/gpu_check.py --out "$out" "$@"
fi
# 9 minutes hard stop on the GPU: the check is sized for 8; a hang must not eat the machine's whole lease.
exec timeout --signal=INT --kill-after=20 540 "$py" bench/gpu_check.py --out "$out" "$@"
