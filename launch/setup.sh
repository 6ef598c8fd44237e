#!/usr/bin/env bash
# Installs what freqrobust needs on a fresh Debian/Ubuntu machine: the Python packages and the
# offline default dataset (Debian's dataset-fashion-mnist). Safe to run again: it skips what is
# present. Also Debian's libtcmalloc-minimal4: CPU runs preload it (freqrobust/platform.py), which
# spares XLA a page fault storm (1.3x the quickstart's training steps/s; docs/BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] \
    || ! ls /usr/lib/*-linux-gnu/libtcmalloc_minimal.so.4 >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist \
    libtcmalloc-minimal4
fi
python -m pip install -q --disable-pip-version-check -r requirements.txt
# The benchmark's six frost photographs, shipped as package data of imagecorruptions: freqrobust
# reads them from the installed folder (corruption `frost`) and never imports the package (its
# import needs OpenCV and pkg_resources, and breaks with NumPy 2). --no-deps: only the photos are
# wanted, so its requirements (opencv-python above all) stay out of the environment.
python -m pip install -q --disable-pip-version-check --no-deps imagecorruptions
# An NVIDIA GPU (nvidia-smi lists one): JAX's CUDA 12 build of the jax version just installed (the
# plain jax wheel runs on the CPU only). A run whose GPU JAX still cannot see says so in a WARNING
# line at its start (freqrobust/sharding.py: unseen_accelerator_warning).
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  jax_version=$(python -c "import importlib.metadata as m; print(m.version('jax'))")
  echo "NVIDIA GPU found ($(nvidia-smi -L | head -n 1)); installing jax[cuda12]==$jax_version"
  python -m pip install -q --disable-pip-version-check "jax[cuda12]==$jax_version"
fi
# Test-only references of tests/models_zoo_test.py and tests/convert_test.py (freqrobust.convert
# itself needs torch only to read a checkpoint). PyTorch: the CPU build only, "2.13.0+cpu", which
# pip finds where the index serves it (190 MB, ~30 s); PyPI's torch 2.13.0 is the
# CUDA build (GBs with its nvidia-* dependencies) and is never pulled: where the CPU wheel is
# absent the install is skipped and those tests skip. RobustBench's published architecture
# definitions, --no-deps: the tests load its architecture files (they import only torch) by path;
# its package __init__ (timm, autoattack, ...) is never imported.
if ! python -c "import torch" >/dev/null 2>&1; then
  python -m pip install -q --disable-pip-version-check "torch==2.13.0+cpu" \
    || echo "launch/setup.sh: no CPU build of torch 2.13.0 here; the PyTorch comparison tests" \
            "will skip." >&2
fi
python -m pip install -q --disable-pip-version-check --no-deps robustbench==1.1.1
# The native oneDNN convolutions (freqrobust/native/: config.train.conv_backend="auto" runs them on
# the CPU): g++ from Debian when missing, then freqrobust/native/build.sh, which takes oneDNN 3.2
# from the package index's wheels onednn-cpu-gomp + onednn-devel-cpu-gomp==2023.2.0 and builds
# build/native/libfreqrobust_conv.so. Optional: without them convolutions run on XLA, so neither a
# missing compiler or wheel (build.sh says so and exits 0) nor a failed build stops the set-up.
if ! command -v g++ >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq g++; } \
    || echo "launch/setup.sh: g++ could not be installed." >&2
fi
bash freqrobust/native/build.sh \
  || echo "launch/setup.sh: the native oneDNN build failed (above); convolutions run on XLA." >&2
