#!/usr/bin/env bash
# Cloud TPU VM: create (if absent), copy this repository to every worker, install, and train on all
# workers at once (multi-host: jax.distributed.initialize() is called via
# --config.distributed=True).
#   TPU_NAME=fr-v4 ZONE=us-central2-b ACCELERATOR=v4-32 bash launch/tpu_vm.sh \
#     configs/resnet18_nfd.py gs://BUCKET/runs/resnet18_nfd
# The workdir should be a GCS path (orbax and the metrics writers accept gs://) so every worker
# sees the same checkpoints; CIFAR-10(-C) must be prepared in TFDS_DATA_DIR (a gs:// folder).
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}"; : "${ZONE:?set ZONE}"
ACCELERATOR=${ACCELERATOR:-v4-8}
RUNTIME=${RUNTIME:-tpu-ubuntu2204-base}
TFDS_DATA_DIR=${TFDS_DATA_DIR:-}
if [ $# -lt 2 ]; then echo "usage: $0 CONFIG WORKDIR [--config.x=y ...]" >&2; exit 2; fi
config=$1; workdir=$2; shift 2
cd "$(dirname "$0")/.."
case "$workdir" in
  gs://*) ;;
  *) echo "WARNING: $workdir is not a gs:// path: on a multi-host slice each worker has its own" \
       "disk, and process 0 alone writes the workdir (docs/SCALING.md)." >&2 ;;
esac
# jax[tpu] of the jax version this machine runs (requirements.txt's pin).
JAX_VERSION=${JAX_VERSION:-$(python -c "import importlib.metadata as m; print(m.version('jax'))")}
TARBALL=${TARBALL:-/tmp/freqrobust.tgz}
if ! gcloud compute tpus tpu-vm describe "$TPU_NAME" --zone "$ZONE" >/dev/null 2>&1; then
  gcloud compute tpus tpu-vm create "$TPU_NAME" --zone "$ZONE" --accelerator-type "$ACCELERATOR" \
    --version "$RUNTIME"
fi
tar czf "$TARBALL" --exclude=.git --exclude=runs .
gcloud compute tpus tpu-vm scp "$TARBALL" "$TPU_NAME":~/freqrobust.tgz --zone "$ZONE" --worker=all
extra=""
[ -n "$TFDS_DATA_DIR" ] && extra="--config.data.tfds_data_dir=$TFDS_DATA_DIR"
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command "
  set -e; mkdir -p ~/freqrobust && tar xzf ~/freqrobust.tgz -C ~/freqrobust && cd ~/freqrobust
  pip install -q -r requirements.txt 'jax[tpu]==$JAX_VERSION' \
    -f https://storage.googleapis.com/jax-releases/libtpu_releases.html
  python -m freqrobust.main --config=$config --workdir=$workdir --config.distributed=True $extra $*"
