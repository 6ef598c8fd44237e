#!/usr/bin/env bash
# Train (and evaluate) one config on this machine, on every local device.
#   bash launch/local.sh configs/quickstart.py runs/quickstart [--config.train.num_epochs=2 ...]
# Rerunning the same command resumes from the newest checkpoint in the workdir.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: bash launch/local.sh CONFIG WORKDIR [--config.field=value ...]" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
config=$1; workdir=$2; shift 2
mkdir -p "$workdir"
python -m freqrobust.main --config="$config" --workdir="$workdir" "$@" 2>&1 \
  | tee -a "$workdir/train.log"
