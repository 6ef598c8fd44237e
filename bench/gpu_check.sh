#!/usr/bin/env bash
# The GPU check of issue 13, in one command: training images/s (ResNet-18, the paper's
# augmentation, float32 and bfloat16), corruption generation images/s, and a short run of
# `python -m freqrobust.main` on synthetic CIFAR-shaped data; figures to OUT_DIR/gpu_check.json
# and OUT_DIR/gpu_check.txt. Under 5 minutes on one GPU (the limit below stops it at 300 s;
# the sections finished by then stay in the JSON).
#
#   bash bench/gpu_check.sh OUT_DIR              # full sizes, on a GPU host
#   bash bench/gpu_check.sh OUT_DIR --reduced    # tiny sizes on a CPU: the same code paths
#   GPU_CHECK_REDUCED=1 bash bench/gpu_check.sh OUT_DIR
#
# Environment: PYTHON (default python), GPU_CHECK_TIMEOUT (seconds, default 300).
set -euo pipefail
if [[ $# -lt 1 || "$1" == -* ]]; then
  echo "usage: bash bench/gpu_check.sh OUT_DIR [--reduced]" >&2
  exit 2
fi
out="$1"
shift
mkdir -p "$out"
out="$(cd "$out" && pwd)"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
limit="${GPU_CHECK_TIMEOUT:-300}"
exec timeout --signal=TERM --kill-after=15 "$limit" "${PYTHON:-python}" bench/gpu_check.py \
  --out="$out" --budget_s="$((limit - 15))" "$@"
