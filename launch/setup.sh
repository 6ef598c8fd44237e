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
