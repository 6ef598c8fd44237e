"""Test set-up: 8 fake CPU devices (for the sharding tests) before JAX initialises its backend."""
import os

os.environ.setdefault("XLA_FLAGS", "")
if "--xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=8"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

# One JAX compilation cache for the whole test session (and the CLI runs it starts): many tests
# compile the same tiny train steps from fresh closures, which the on-disk cache (keyed on the
# computation, not the Python function) compiles once. A fresh temporary folder per session, so
# every session still compiles each computation at least once; FREQROBUST_TEST_JAX_CACHE=off
# turns it off, a path keeps it between sessions. The pytest-xdist workers share the folder: an
# entry another worker is still writing reads as damaged, which JAX reports with a warning and
# compiles anew; identical computations compile to identical entries, so a race never serves a
# wrong executable.
_cache = os.environ.get("FREQROBUST_TEST_JAX_CACHE", "")
if _cache != "off" and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  if not _cache:
    import atexit
    import shutil
    import tempfile
    _cache = tempfile.mkdtemp(prefix="freqrobust-test-jax-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
