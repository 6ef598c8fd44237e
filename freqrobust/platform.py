"""XLA settings for CPU runs (docs/benchmarks/train.md; docs/BENCHMARKS.md, "XLA flags per
workload").

jaxlib 0.10.2 sends dots, convolutions and reductions (the BatchNorm statistics) to YNNPACK by
default on CPU. YNNPACK's convolution is 2-3x slower than XLA's Eigen convolution for the weight
gradient (a conv with a 32x32 "kernel" and a 3x3 output) and no faster elsewhere, while its
reductions beat XLA's own loops. So: convolutions out of the list, the rest left as jaxlib has it
(ResNet-18 train step 2.9-3.0x jaxlib's defaults on the AVX2 AMD EPYC of 2026-11-29).

Elementwise fusions (`+eltwise`) were in the list until 2026-11-29: they saved 12% of the
ResNet-18 step on an AVX-512 Xeon, nothing on the AVX2 EPYC, and cost the augmentation-heavy
methods dearly there (PRIME's step at 0.50x jaxlib's defaults against 1.30x without them, AugMix
1.44x against 1.72x, the paper's quickstart step 1.43x against 1.64x;
`bench/bench_xla_flags.py`). They still won 8-10% on a small ResNet step without any
augmentation, which no training here runs. The flags change the order of float operations, not
the maths: the gradients move by as much as a one-ulp change of the input images moves them.

Call `configure_xla_for_cpu()` before the first JAX computation (XLA reads XLA_FLAGS when it
creates its backend). It does nothing when the user set XLA_FLAGS, when the run will not be on the
CPU, or when the backend already exists.

The memory allocator (`reexec_with_tcmalloc`, called by every command line tool before it parses
its flags): under glibc's malloc XLA:CPU's per-step buffers go back to the kernel and come back
as fresh pages every step (2.1 million page faults in 20 small-ResNet steps, a sixth of the CPU
time in the kernel). Google's tcmalloc keeps them. A CPU run re-executes itself once with
Debian's libtcmalloc-minimal4 preloaded when it is installed (`launch/setup.sh` installs it):
the README's quickstart took 210 instead of 282 s on the AVX-512 AMD EPYC of 2026-11-30, with
the same losses to the last printed digit (docs/BENCHMARKS.md, "The AVX-512 AMD EPYC (Zen 4)").
FREQROBUST_MALLOC=system keeps glibc's malloc.
"""
import importlib.util
import os
import sys
from typing import Dict, Mapping, MutableMapping, Optional, Sequence, Tuple

# jaxlib's default YNNPACK fusion list, minus lone convolutions (to XLA's Eigen runtime). "-"
# edits the default list instead of replacing it.
CPU_XLA_FLAGS: Tuple[str, ...] = (
    "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",)

# Packages whose presence means JAX would pick an accelerator when JAX_PLATFORMS is unset.
ACCELERATOR_PLUGINS: Tuple[str, ...] = ("jax_cuda12_plugin", "jax_cuda13_plugin",
                                        "jax_rocm60_plugin", "jax_rocm7_plugin", "libtpu",
                                        "jax_plugins")


def will_run_on_cpu(environ: Mapping[str, str],
                    installed: Optional[Sequence[str]] = None) -> bool:
  """True when JAX's default backend will be the CPU: JAX_PLATFORMS (or the older
  JAX_PLATFORM_NAME) starts with "cpu", or neither is set and no accelerator plugin is installed."""
  platforms = environ.get("JAX_PLATFORMS") or environ.get("JAX_PLATFORM_NAME") or ""
  if platforms:
    return platforms.split(",")[0].strip().lower() == "cpu"
  if installed is None:
    installed = [p for p in ACCELERATOR_PLUGINS if importlib.util.find_spec(p) is not None]
  return not installed


def cpu_flags_to_set(environ: Mapping[str, str],
                     installed: Optional[Sequence[str]] = None) -> Optional[str]:
  """The XLA_FLAGS value to set, or None: the user's XLA_FLAGS (even empty) always win."""
  if "XLA_FLAGS" in environ or not will_run_on_cpu(environ, installed):
    return None
  return " ".join(CPU_XLA_FLAGS)


# Where Debian/Ubuntu (libtcmalloc-minimal4), Fedora and source builds put tcmalloc.
TCMALLOC_NAMES: Tuple[str, ...] = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
TCMALLOC_DIRS: Tuple[str, ...] = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                                  "/usr/lib64", "/usr/lib", "/usr/local/lib")
MALLOC_ENV = "FREQROBUST_MALLOC"  # "tcmalloc" (the default: when installed) or "system".


def find_tcmalloc(dirs: Sequence[str] = TCMALLOC_DIRS) -> Optional[str]:
  """The path of an installed tcmalloc shared library, or None."""
  for directory in dirs:
    for name in TCMALLOC_NAMES:
      path = os.path.join(directory, name)
      if os.path.exists(path):
        return path
  return None


def wants_tcmalloc(environ: Mapping[str, str], installed: Optional[Sequence[str]] = None,
                   system: str = sys.platform) -> bool:
  """Whether this run should have tcmalloc preloaded and lacks it: a CPU run on Linux, not
  FREQROBUST_MALLOC=system, and tcmalloc not yet in LD_PRELOAD (which also ends the re-execution
  after one round). An unknown FREQROBUST_MALLOC value is a ValueError naming both choices."""
  choice = environ.get(MALLOC_ENV, "tcmalloc").strip().lower()
  if choice not in ("tcmalloc", "system"):
    raise ValueError(f"{MALLOC_ENV}={environ[MALLOC_ENV]!r}: use 'tcmalloc' (the default: "
                     "preload tcmalloc when it is installed) or 'system' (glibc's malloc).")
  return (choice == "tcmalloc" and system.startswith("linux")
          and "tcmalloc" not in environ.get("LD_PRELOAD", "")
          and will_run_on_cpu(environ, installed))


def _with_preload(environ: Mapping[str, str], library: str) -> Dict[str, str]:
  """A copy of `environ` with `library` first in LD_PRELOAD (a user's preload kept after it)."""
  preload = environ.get("LD_PRELOAD", "")
  new = dict(environ)
  new["LD_PRELOAD"] = f"{library}:{preload}" if preload else library
  # tcmalloc reports every allocation above 1 GiB on stderr by default (a CIFAR set on the device).
  new.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 40))
  return new


def tcmalloc_environment(environ: Mapping[str, str], installed: Optional[Sequence[str]] = None,
                         library: Optional[str] = None,
                         system: str = sys.platform) -> Optional[Dict[str, str]]:
  """The environment to re-execute a CPU run in with tcmalloc preloaded, or None to stay as is:
  `wants_tcmalloc` says no, or no tcmalloc is installed (`library` None)."""
  if not wants_tcmalloc(environ, installed, system) or library is None:
    return None
  return _with_preload(environ, library)


def reexec_with_tcmalloc(argv: Optional[Sequence[str]] = None) -> None:
  """Replaces this process by the same command with tcmalloc preloaded, when `wants_tcmalloc`
  says so and it is installed; returns otherwise (with one line on stderr when it is not
  installed). Call it first thing in a command line tool: whatever the process did before is
  redone by the new one."""
  if argv is None and ("pytest" in sys.modules or sys.orig_argv[1:2] == ["-c"]):
    return  # A tool called inside a test or a `python -c` program: never replace that process.
  if not wants_tcmalloc(os.environ):
    return
  library = find_tcmalloc()
  if library is None:
    print("freqrobust: tcmalloc is not installed, so this CPU run keeps glibc's malloc (its "
          "small-model steps up to 1.35x slower): apt-get install libtcmalloc-minimal4, or set "
          f"{MALLOC_ENV}=system to silence this.", file=sys.stderr, flush=True)
    return
  argv = list(sys.orig_argv if argv is None else argv)
  argv[0] = sys.executable
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, argv, _with_preload(os.environ, library))


def _backend_initialised() -> bool:
  if "jax" not in sys.modules:
    return False
  from jax._src import xla_bridge  # Private, but the only way to ask without creating a backend.
  return xla_bridge.backends_are_initialized()


def configure_xla_for_cpu(environ: Optional[MutableMapping[str, str]] = None) -> bool:
  """Sets XLA_FLAGS to `CPU_XLA_FLAGS` for a CPU run; returns whether it did.

  Leaves everything alone when XLA_FLAGS is already set, when the platform is not the CPU, or when
  a JAX backend already exists (too late for XLA to read the flags).
  """
  environ = os.environ if environ is None else environ
  value = cpu_flags_to_set(environ)
  if value is None or _backend_initialised():
    return False
  environ["XLA_FLAGS"] = value
  return True
