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


def test_tcmalloc_environment_only_for_cpu_runs_that_lack_it():
  lib = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
  env = platform.tcmalloc_environment({"PATH": "/bin"}, [], lib, "linux")
  assert env["LD_PRELOAD"] == lib and env["PATH"] == "/bin"
  assert int(env["TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"]) >= 1 << 40
  # A user's preload is kept, after tcmalloc.
  env = platform.tcmalloc_environment({"LD_PRELOAD": "/x/libfoo.so"}, [], lib, "linux")
  assert env["LD_PRELOAD"] == f"{lib}:/x/libfoo.so"
  # Stays as is: already preloaded (ends the re-execution), opted out, not installed, GPU run,
  # not Linux.
  assert platform.tcmalloc_environment({"LD_PRELOAD": lib}, [], lib, "linux") is None
  assert platform.tcmalloc_environment({"FREQROBUST_MALLOC": "system"}, [], lib, "linux") is None
  assert platform.tcmalloc_environment({}, [], None, "linux") is None
  assert platform.tcmalloc_environment({}, ["jax_cuda12_plugin"], lib, "linux") is None
  assert platform.tcmalloc_environment({"JAX_PLATFORMS": "cuda"}, [], lib, "linux") is None
  assert platform.tcmalloc_environment({}, [], lib, "darwin") is None
  assert platform.tcmalloc_environment({"FREQROBUST_MALLOC": " TCMalloc"}, [], lib, "linux")


def test_unknown_malloc_choice_is_named():
  import pytest
  with pytest.raises(ValueError, match="FREQROBUST_MALLOC='jemalloc'.*'system'"):
    platform.tcmalloc_environment({"FREQROBUST_MALLOC": "jemalloc"}, [], None, "linux")


def test_find_tcmalloc(tmp_path):
  assert platform.find_tcmalloc([str(tmp_path)]) is None
  (tmp_path / "libtcmalloc.so.4").write_bytes(b"")
  assert platform.find_tcmalloc([str(tmp_path)]) == str(tmp_path / "libtcmalloc.so.4")
  (tmp_path / "libtcmalloc_minimal.so.4").write_bytes(b"")  # The minimal one first.
  assert platform.find_tcmalloc([str(tmp_path)]) == str(tmp_path / "libtcmalloc_minimal.so.4")


_MALLOC_CHILD = textwrap.dedent("""
  import json, os, sys
  sys.path.insert(0, {root!r})
  from freqrobust import cli

  def main(argv):
    with open("/proc/self/maps") as maps:
      loaded = any("tcmalloc" in line for line in maps)
    print(json.dumps(dict(loaded=loaded, argv=argv[1:], pid=os.getpid())))

  cli.run(main)
""")


def _malloc_child(tmp_path, **env_extra) -> "subprocess.CompletedProcess":
  script = tmp_path / "child.py"
  script.write_text(_MALLOC_CHILD.format(root=ROOT))
  env = {k: v for k, v in os.environ.items()
         if k not in ("LD_PRELOAD", "FREQROBUST_MALLOC", "JAX_PLATFORM_NAME")}
  env.update(JAX_PLATFORMS="cpu", **env_extra)
  return subprocess.run([sys.executable, str(script), "extra"], env=env, capture_output=True,
                        text=True, timeout=120)


def test_command_line_tools_reexecute_with_tcmalloc(tmp_path):
  import pytest
  if platform.find_tcmalloc() is None:
    pytest.skip("tcmalloc is not installed (launch/setup.sh installs libtcmalloc-minimal4)")
  child = _malloc_child(tmp_path)
  assert child.returncode == 0, child.stderr
  out = json.loads(child.stdout.strip().splitlines()[-1])
  assert out["loaded"] and out["argv"] == ["extra"]  # Same arguments after the re-execution.
  child = _malloc_child(tmp_path, FREQROBUST_MALLOC="system")
  assert not json.loads(child.stdout.strip().splitlines()[-1])["loaded"]
  child = _malloc_child(tmp_path, FREQROBUST_MALLOC="jemalloc")
  assert child.returncode == 2 and "FREQROBUST_MALLOC='jemalloc'" in child.stderr


def test_reexec_replaces_the_process_once_or_says_why_not(monkeypatch, capsys):
  calls = []
  monkeypatch.setattr(platform.os, "execve", lambda *a: calls.append(a))
  monkeypatch.setattr(platform, "will_run_on_cpu", lambda environ, installed=None: True)
  monkeypatch.delenv("LD_PRELOAD", raising=False)
  monkeypatch.delenv("FREQROBUST_MALLOC", raising=False)
  monkeypatch.setattr(platform, "find_tcmalloc", lambda: "/lib/libtcmalloc_minimal.so.4")
  platform.reexec_with_tcmalloc(["python", "-m", "freqrobust.main", "--workdir=x"])
  (executable, argv, env), = calls
  assert argv == [sys.executable, "-m", "freqrobust.main", "--workdir=x"]
  assert executable == sys.executable and env["LD_PRELOAD"] == "/lib/libtcmalloc_minimal.so.4"
  # Not installed: no re-execution, one line on stderr that names the package and the opt-out.
  monkeypatch.setattr(platform, "find_tcmalloc", lambda: None)
  platform.reexec_with_tcmalloc(["python", "x.py"])
  assert len(calls) == 1
  err = capsys.readouterr().err
  assert "libtcmalloc-minimal4" in err and "FREQROBUST_MALLOC=system" in err
  monkeypatch.setenv("FREQROBUST_MALLOC", "system")  # Opted out: silent.
  platform.reexec_with_tcmalloc(["python", "x.py"])
  assert len(calls) == 1 and capsys.readouterr().err == ""


def test_a_tool_called_inside_pytest_never_replaces_the_test_process(monkeypatch):
  calls = []
  monkeypatch.setattr(platform.os, "execve", lambda *a: calls.append(a))
  monkeypatch.setattr(platform, "will_run_on_cpu", lambda environ, installed=None: True)
  monkeypatch.setattr(platform, "find_tcmalloc", lambda: "/lib/libtcmalloc_minimal.so.4")
  monkeypatch.delenv("LD_PRELOAD", raising=False)
  monkeypatch.delenv("FREQROBUST_MALLOC", raising=False)
  platform.reexec_with_tcmalloc()  # This process's own command line: pytest's.
  assert calls == []
