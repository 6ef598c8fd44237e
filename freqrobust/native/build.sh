#!/usr/bin/env bash
# Builds the oneDNN convolution library of freqrobust/native/conv.py into build/native/ (git-
# ignored; FREQROBUST_NATIVE_DIR overrides): oneDNN 3.2 from the package index's wheels
# onednn-cpu-gomp + onednn-devel-cpu-gomp 2023.2.0 (GNU OpenMP; the 2026 `onednn` wheels are SYCL
# builds without a CPU engine), jaxlib's FFI headers, g++. Without g++ or the wheels it says so and
# exits 0: convolutions then run on XLA. Rebuilds only when the source is newer than the library.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${FREQROBUST_NATIVE_DIR:-build/native}
PYTHON=${PYTHON:-python}
CXX=${CXX:-g++}
ONEDNN_VERSION=2023.2.0
SRC=freqrobust/native/conv_onednn.cc
LIB="$OUT/libfreqrobust_conv.so"

skip() {
  echo "freqrobust/native/build.sh: $*; the oneDNN convolution backend is not built (convolutions" \
       "run on XLA; config.train.conv_backend='auto' falls back to it)." >&2
  exit 0
}

command -v "$CXX" >/dev/null 2>&1 || skip "no C++ compiler ($CXX; Debian: apt-get install g++)"
if [ -f "$LIB" ] && [ "$LIB" -nt "$SRC" ] && [ "$LIB" -nt "$0" ]; then
  echo "freqrobust/native/build.sh: $LIB is up to date."
  exit 0
fi
mkdir -p "$OUT"
if [ ! -f "$OUT/onednn/lib/libdnnl.so.3" ] \
    || [ ! -f "$OUT/onednn/include/oneapi/dnnl/dnnl.hpp" ]; then
  "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps -d "$OUT/wheels" \
      "onednn-cpu-gomp==$ONEDNN_VERSION" "onednn-devel-cpu-gomp==$ONEDNN_VERSION" \
    || skip "the wheels onednn-cpu-gomp/onednn-devel-cpu-gomp==$ONEDNN_VERSION are not on" \
            "the package index"
  # The wheels keep the library and headers under <name>.data/data/ (pip install --target would
  # leave them there too): take the library (one copy, by its soname) and the headers.
  "$PYTHON" - "$OUT" <<'PY'
import glob, os, shutil, sys, zipfile
out = sys.argv[1]
for wheel in glob.glob(os.path.join(out, "wheels", "onednn_*cpu_gomp-*.whl")):
  with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
      rel = name.split(".data/data/", 1)[-1] if ".data/data/" in name else None
      if rel and (rel == "lib/libdnnl.so.3" or rel.startswith("include/")):
        target = os.path.join(out, "onednn", rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(name) as src, open(target, "wb") as dst:
          shutil.copyfileobj(src, dst)
PY
  rm -rf "$OUT/wheels"
fi
[ -f "$OUT/onednn/lib/libdnnl.so.3" ] || skip "the oneDNN wheel held no lib/libdnnl.so.3"
JAX_INCLUDE=$("$PYTHON" -c "import jax; print(jax.ffi.include_dir())") \
  || skip "jax is not installed (its FFI headers are needed)"
# -fvisibility=hidden: only the handlers and the probe (marked in the source) are exported.
"$CXX" -O2 -std=c++17 -shared -fPIC -fvisibility=hidden -Wall -DNDEBUG \
    -isystem "$JAX_INCLUDE" -isystem "$OUT/onednn/include" "$SRC" "$OUT/onednn/lib/libdnnl.so.3" \
    -Wl,-rpath,'$ORIGIN/onednn/lib' -pthread -o "$LIB.tmp"
mv "$LIB.tmp" "$LIB"
echo "freqrobust/native/build.sh: built $LIB (oneDNN $ONEDNN_VERSION)."
