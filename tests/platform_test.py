"""Laws of freqrobust.platform: the CPU XLA flags are set only when the user left XLA_FLAGS alone
and the run is on the CPU, and they take effect in a fresh process without changing the maths."""
import json
import os
import subprocess
import sys
import textwrap

from freqrobust import platform

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_user_xla_flags_win():
  assert platform.cpu_flags_to_set(
      {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}, []) is None
  assert platform.cpu_flags_to_set({"XLA_FLAGS": ""}, []) is None  # Set to empty is still set.


def test_flags_only_for_cpu_runs():
  assert platform.cpu_flags_to_set({}, []) == " ".join(platform.CPU_XLA_FLAGS)
  assert platform.cpu_flags_to_set({"JAX_PLATFORMS": "cpu"}, ["jax_cuda12_plugin"]) is not None
  assert platform.cpu_flags_to_set({"JAX_PLATFORMS": "cuda,cpu"}, []) is None
  assert platform.cpu_flags_to_set({"JAX_PLATFORM_NAME": "tpu"}, []) is None
  assert platform.cpu_flags_to_set({}, ["jax_cuda12_plugin"]) is None  # JAX would pick the GPU.


def test_configure_leaves_user_environment_alone():
  environ = {"XLA_FLAGS": "--xla_cpu_enable_fast_math=false", "JAX_PLATFORMS": "cpu"}
  assert not platform.configure_xla_for_cpu(environ)
  assert environ["XLA_FLAGS"] == "--xla_cpu_enable_fast_math=false"


def test_configure_is_a_no_op_once_the_backend_exists():
  import jax
  jax.devices()  # conftest's backend (8 fake CPU devices) exists from here on.
  environ = {"JAX_PLATFORMS": "cpu"}
  assert not platform.configure_xla_for_cpu(environ)
  assert "XLA_FLAGS" not in environ


_CHILD = textwrap.dedent("""
  import hashlib, json, sys
  sys.path.insert(0, {root!r})
  from freqrobust import platform
  applied = platform.configure_xla_for_cpu() if sys.argv[1] == "on" else False
  import jax, jax.numpy as jnp
  import numpy as np
  x = jax.random.normal(jax.random.key(0), (4, 8, 8, 32))
  w = jax.random.normal(jax.random.key(1), (3, 3, 32, 32))
  def loss(w):
    y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.sum(jnp.tanh(y))
  grad = jax.jit(jax.grad(loss))
  hlo = grad.lower(w).compile().as_text()
  print(json.dumps(dict(applied=applied, program=hashlib.sha256(hlo.encode()).hexdigest(),
                        grad=np.asarray(grad(w)).ravel().tolist())))
""")


def _child(mode: str) -> dict:
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORM_NAME")}
  env["JAX_PLATFORMS"] = "cpu"
  out = subprocess.run([sys.executable, "-c", _CHILD.format(root=ROOT), mode], env=env, check=True,
                       capture_output=True, text=True, timeout=120).stdout
  return json.loads(out.strip().splitlines()[-1])


def test_flags_take_effect_and_keep_the_maths():
  on, off = _child("on"), _child("off")
  assert on["applied"] and not off["applied"]
  assert on["program"] != off["program"]  # XLA read the flags: a different compiled program.
  import numpy as np
  np.testing.assert_allclose(on["grad"], off["grad"], rtol=1e-4, atol=1e-4)
