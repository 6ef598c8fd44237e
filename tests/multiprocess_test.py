"""Multi-process runs (issue #28): two JAX processes on localhost, one CPU device each, joined by
an explicit coordinator (`--config.coordinator_address=127.0.0.1:PORT`, read by freqrobust.main),
against one process with the same two devices.

Laws: a two-process run preempted by SIGTERM to ONE process (process 1, at step 3) saves once and
both processes exit 0; resumed, it ends with the parameters and clean accuracy of the
uninterrupted one-process run, with one results.json and no duplicated metrics line; a busy
workdir is refused in both processes at once with the same message; so is a changed config.
Every launch has a timeout, so a hang fails the test instead of the suite.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from freqrobust import trained
from freqrobust import workdir as workdir_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.dirname(os.path.abspath(__file__))
TRAIN_TIMEOUT = 240  # s per launch; a tiny run takes ~10-30 s on 2 loaded cores.
REFUSAL_TIMEOUT = 120

# The tests' tiny config (tests/workdirs.py): 8 steps of batch 16 on 12x12 synthetic images.
CONFIG_FILE = f'''
import sys
sys.path.insert(0, {TESTS!r})
import workdirs


def get_config():
  return workdirs.tiny_paper_config(log_every_steps=2, checkpoint_every_steps=2)
'''

# freqrobust.main, with SIGTERM sent to process KILL_PROCESS by itself once step KILL_AT_STEP has
# run (train_and_evaluate's step_callback): a signal that reaches one process only.
DRIVER = '''
import os, signal, sys
import jax
from freqrobust import main, train

at, who = int(os.environ.get("KILL_AT_STEP", "0")), int(os.environ.get("KILL_PROCESS", "-1"))
original = train.train_and_evaluate


def train_and_evaluate(config, workdir, step_callback=None):
  def kill(step):
    if step == at and jax.process_index() == who:
      os.kill(os.getpid(), signal.SIGTERM)
  return original(config, workdir, kill if at else step_callback)


train.train_and_evaluate = train_and_evaluate
sys.argv[0] = "freqrobust.main"
main.run()
'''


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(devices: int, **extra) -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu", FREQROBUST_MALLOC="system",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  env.update({k: str(v) for k, v in extra.items()})
  return env


def _files(tmp_path):
  config = tmp_path / "tiny_config.py"
  if not config.exists():
    config.write_text(CONFIG_FILE)
    (tmp_path / "driver.py").write_text(DRIVER)
  return str(config), str(tmp_path / "driver.py")


def launch(tmp_path, workdir, processes=2, overrides=(), timeout=TRAIN_TIMEOUT, **env):
  """Runs `processes` processes of the driver on `workdir` (one device each; one process gets
  two devices); returns [(returncode, stdout, stderr)] in process order."""
  config, driver = _files(tmp_path)
  args = [sys.executable, driver, f"--config={config}", f"--workdir={workdir}", *overrides]
  if processes == 1:
    commands = [(args, _env(2, **env))]
  else:
    port = _free_port()
    commands = [(args + [f"--config.coordinator_address=127.0.0.1:{port}",
                         f"--config.num_processes={processes}", f"--config.process_id={i}",
                         "--config.distributed=True"], _env(1, **env))
                for i in range(processes)]
  procs = [subprocess.Popen(a, cwd=REPO, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True) for a, e in commands]
  out = []
  try:
    for p in procs:
      stdout, stderr = p.communicate(timeout=timeout)
      out.append((p.returncode, stdout, stderr))
  except subprocess.TimeoutExpired:
    for p in procs:
      p.kill()
    logs = [p.communicate()[1][-1500:] for p in procs]
    pytest.fail(f"a process hung for {timeout} s; stderr tails: {logs}")
  return out


def _leaves(workdir):
  run = trained.load_trained(str(workdir))
  return run.step, [np.asarray(x) for x in jax.tree.leaves(jax.device_get(run.variables))]


def _kind(line) -> str:
  return line.get("kind") or ("eval" if any(k.startswith("test_") for k in line) else "train")


def _clean(results):
  """The clean evaluation's numbers in results.json (wherever the layout keeps them)."""
  stack = [results]
  while stack:
    node = stack.pop(0)
    if isinstance(node, dict):
      if "accuracy" in node and "examples" in node:
        return node
      stack.extend(node.values())
  raise AssertionError(f"no clean accuracy in {results}")


def _metrics_lines(workdir):
  with open(os.path.join(workdir, workdir_lib.METRICS)) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """The uninterrupted one-process run on two devices (shared by the tests)."""
  tmp = tmp_path_factory.mktemp("reference")
  workdir = str(tmp / "run")
  (code, stdout, stderr), = launch(tmp, workdir, processes=1)
  assert code == 0, stderr[-3000:]
  return workdir


def test_two_processes_preempted_by_one_sigterm_and_resumed_equal_one_process(reference,
                                                                               tmp_path):
  workdir = str(tmp_path / "run")
  first = launch(tmp_path, workdir, KILL_AT_STEP=3, KILL_PROCESS=1)
  for i, (code, stdout, stderr) in enumerate(first):
    assert code == 0, f"process {i}: {stderr[-3000:]}"
  # Process 1 alone got the signal; both saved step 3 (one checkpoint) and left.
  assert "SIGTERM: saved the checkpoint of step 3" in first[0][1]
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "3"]
  assert not os.path.exists(os.path.join(workdir, workdir_lib.RESULTS))
  second = launch(tmp_path, workdir)
  for i, (code, stdout, stderr) in enumerate(second):
    assert code == 0, f"process {i}: {stderr[-3000:]}"
  assert "Resumed from the checkpoint of step 3" in second[0][1]
  # Process 1 prints nothing (gloo's connection line aside): process 0 speaks for the run.
  assert [l for l in second[1][1].splitlines() if not l.startswith("[Gloo]")] == []
  # Final parameters, batch statistics and theta_b: those of one process on the same 2 devices.
  step, leaves = _leaves(workdir)
  ref_step, ref_leaves = _leaves(reference)
  assert step == ref_step == 8
  for a, b in zip(leaves, ref_leaves):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  results = workdir_lib.read_results(workdir)
  ref_results = workdir_lib.read_results(reference)
  assert _clean(results) == pytest.approx(_clean(ref_results), rel=1e-6)
  # One writer: one results.json and no stray temporary file; metrics.jsonl without a repeated
  # (step, kind) line, the training lines those of the preempted and resumed halves.
  assert not [n for n in os.listdir(workdir) if n.endswith(".tmp")]
  lines = _metrics_lines(workdir)
  keys = [(l["step"], _kind(l)) for l in lines]
  assert len(keys) == len(set(keys)), keys
  assert [s for s, kind in keys if kind == "train"] == [2, 3, 4, 6, 8]


def test_busy_workdir_is_refused_in_every_process_at_once(tmp_path):
  workdir = str(tmp_path / "run")
  with workdir_lib.locked(workdir):  # Another run holds the workdir.
    out = launch(tmp_path, workdir, timeout=REFUSAL_TIMEOUT)
  messages = []
  for i, (code, stdout, stderr) in enumerate(out):
    assert code == 2, f"process {i}: {stderr[-3000:]}"
    assert f"is in use by another run (pid {os.getpid()} on host" in stderr, stderr[-2000:]
    messages.append(stderr[stderr.index("is in use"):].split("\n")[0])
  assert messages[0] == messages[1]
  assert not os.path.exists(os.path.join(workdir, "checkpoints"))


def test_changed_config_is_refused_in_every_process(reference, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(reference, workdir)
  before = open(os.path.join(workdir, "config.json")).read()
  out = launch(tmp_path, workdir, overrides=["--config.model.attention=basic"],
               timeout=REFUSAL_TIMEOUT)
  for i, (code, stdout, stderr) in enumerate(out):
    assert code == 2, f"process {i}: {stderr[-3000:]}"
    assert "model.attention: 'extended' -> 'basic'" in stderr, stderr[-2000:]
  assert open(os.path.join(workdir, "config.json")).read() == before
