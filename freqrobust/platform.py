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
"""
import importlib.util
import os
import sys
from typing import Mapping, MutableMapping, Optional, Sequence, Tuple

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
