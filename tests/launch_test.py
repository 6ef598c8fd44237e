"""The launchers, exercised (issue #28) with stand-ins on PATH for what this machine lacks.

- launch/slurm_gpu.sh in a simulated 2-task Slurm job on localhost: SLURM_* variables as Slurm
  sets them and a stand-in `srun` that starts the tasks here with SLURM_PROCID / SLURM_LOCALID;
  jax.distributed.initialize() finds the cluster with no arguments, as on a real one, and the
  run trains to the end in both processes.
- launch/tpu_vm.sh with a stand-in `gcloud` that records what it was asked to run.
- launch/sweep.py --submit=slurm with a stand-in `sbatch`.
- launch/setup.sh with a stand-in `nvidia-smi` (a GPU) and a stand-in `python` that records
  `python -m pip ...` instead of installing (everything else goes to the real interpreter).
Every subprocess has a timeout.
"""
import json
import os
import shlex
import socket
import stat
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.dirname(os.path.abspath(__file__))

TINY_CONFIG = f'''
import sys
sys.path.insert(0, {TESTS!r})
import workdirs


def get_config():
  return workdirs.tiny_paper_config(log_every_steps=2, checkpoint_every_steps=4, max_steps=4)
'''

# Starts SLURM_NTASKS copies of its command here, each with its SLURM_PROCID, and waits for all.
SRUN = '''#!/usr/bin/env bash
pids=()
for ((i = 0; i < ${SLURM_NTASKS:-1}; i++)); do
  SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NODEID=0 "$@" > "$SRUN_LOG_DIR/task$i.out" \\
    2> "$SRUN_LOG_DIR/task$i.err" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
'''

RECORDER = '''#!/usr/bin/env bash
printf '%s\\n' "$(basename "$0") $*" >> "$RECORD"
{extra}
'''


def _script(folder, name, text):
  path = os.path.join(folder, name)
  with open(path, "w") as f:
    f.write(text)
  os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
  return path


def _slurm_job_id() -> int:
  """A job id whose coordinator port (jax: job id % 4096 + 61440) is free here."""
  for _ in range(50):
    with socket.socket() as s:
      s.bind(("", 0))
      port = s.getsockname()[1]
    if port >= 61440:
      return port - 61440 + 4096 * 7
  for port in range(61440, 65536):
    with socket.socket() as s:
      try:
        s.bind(("", port))
      except OSError:
        continue
      return port - 61440 + 4096 * 7
  pytest.skip("no free port in jax's Slurm range")


def test_slurm_script_trains_in_a_simulated_two_task_job(tmp_path):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  _script(bin_dir, "srun", SRUN)
  (tmp_path / "tiny_config.py").write_text(TINY_CONFIG)
  workdir = tmp_path / "run"
  env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
             SRUN_LOG_DIR=str(tmp_path), SLURM_JOB_ID=str(_slurm_job_id()), SLURM_NTASKS="2",
             SLURM_NNODES="1", SLURM_STEP_NODELIST="localhost", SLURM_STEP_NUM_NODES="1",
             SLURM_SUBMIT_DIR=REPO, JAX_PLATFORMS="cpu", FREQROBUST_MALLOC="system",
             XLA_FLAGS="--xla_force_host_platform_device_count=1",
             PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  out = subprocess.run(["bash", os.path.join(REPO, "launch", "slurm_gpu.sh"),
                        str(tmp_path / "tiny_config.py"), str(workdir)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
  logs = {i: ((tmp_path / f"task{i}.out").read_text(), (tmp_path / f"task{i}.err").read_text())
          for i in (0, 1)}
  assert out.returncode == 0, (out.stderr[-1000:], logs[0][1][-2000:], logs[1][1][-2000:])
  assert "2 device(s)" in logs[0][0]  # Both processes' devices in one mesh.
  results = json.loads((workdir / "results.json").read_text())
  assert results["step"] == 4 and results["status"] in ("finished", "trained")
  with open(workdir / "config.json") as f:
    assert json.load(f)["distributed"] is True  # The script turned it on for 2 tasks.


def test_tpu_vm_script_creates_copies_and_trains_on_every_worker(tmp_path):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  record = tmp_path / "gcloud.log"
  # `describe` fails (no such TPU yet): the script must create it.
  _script(bin_dir, "gcloud", RECORDER.format(
      extra='[ "$4" = describe ] && exit 1\nexit 0'))
  env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", RECORD=str(record),
             TPU_NAME="fr", ZONE="us-central2-b", ACCELERATOR="v4-32", JAX_VERSION="0.10.2",
             TARBALL=str(tmp_path / "repo.tgz"))
  out = subprocess.run(["bash", os.path.join(REPO, "launch", "tpu_vm.sh"),
                        "configs/resnet18_nfd.py", "gs://bucket/runs/x",
                        "--config.train.num_epochs=3"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  calls = record.read_text().splitlines()
  assert calls[0].startswith("gcloud compute tpus tpu-vm describe fr --zone us-central2-b")
  assert calls[1].startswith("gcloud compute tpus tpu-vm create fr") and "v4-32" in calls[1]
  assert calls[2].startswith("gcloud compute tpus tpu-vm scp") and "--worker=all" in calls[2]
  ssh = "\n".join(calls[3:])
  assert "tpu-vm ssh fr" in ssh and "--worker=all" in ssh
  assert "'jax[tpu]==0.10.2'" in ssh
  assert ("python -m freqrobust.main --config=configs/resnet18_nfd.py "
          "--workdir=gs://bucket/runs/x --config.distributed=True") in ssh
  assert "--config.train.num_epochs=3" in ssh
  assert os.path.getsize(tmp_path / "repo.tgz") > 0


def test_sweep_submits_one_slurm_job_per_run(tmp_path):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  record = tmp_path / "sbatch.log"
  _script(bin_dir, "sbatch", RECORDER.format(extra='echo "Submitted batch job 42"'))
  env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", RECORD=str(record),
             FREQROBUST_MALLOC="system")
  root = tmp_path / "root"
  out = subprocess.run([sys.executable, os.path.join(REPO, "launch", "sweep.py"),
                        "--table=table3", "--seeds=0,1", f"--root={root}", "--submit=slurm",
                        "--config.train.num_epochs=2"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  calls = [shlex.split(line) for line in record.read_text().splitlines()]
  assert len(calls) >= 2 and len(calls) % 2 == 0  # Every run of the table, two seeds each.
  for call in calls:
    assert call[0] == "sbatch" and call[1] == os.path.join(REPO, "launch", "slurm_gpu.sh")
    assert call[2].startswith("configs/paper.py:") and call[3].startswith(str(root))
    assert call[4:] == ["--config.train.num_epochs=2"]
  assert len({c[3] for c in calls}) == len(calls)  # One workdir per job.


def test_sweep_without_sbatch_is_refused_before_creating_anything(tmp_path):
  path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                         if not os.path.exists(os.path.join(d, "sbatch")))
  root = tmp_path / "root"
  out = subprocess.run([sys.executable, os.path.join(REPO, "launch", "sweep.py"),
                        "--table=table3", "--seeds=0", f"--root={root}", "--submit=slurm"],
                       cwd=REPO, env=dict(os.environ, PATH=path, FREQROBUST_MALLOC="system"),
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 2, out.stderr[-2000:]
  assert "sbatch is not on this machine's PATH" in out.stderr and "Errno" not in out.stderr
  assert not root.exists()


def test_setup_installs_jax_cuda_when_nvidia_smi_lists_a_gpu(tmp_path):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  record = tmp_path / "calls.log"
  _script(bin_dir, "nvidia-smi", RECORDER.format(
      extra='echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0000)"'))
  # `python -m pip ...` is recorded, not run; any other python call runs the real interpreter.
  _script(bin_dir, "python", RECORDER.format(
      extra=f'[ "$1 $2" = "-m pip" ] && exit 0\nexec {shlex.quote(sys.executable)} "$@"'))
  for tool in ("sudo", "apt-get"):  # Never touch the system from a test.
    _script(bin_dir, tool, RECORDER.format(extra="exit 0"))
  env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", RECORD=str(record))
  out = subprocess.run(["bash", os.path.join(REPO, "launch", "setup.sh")], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  import jax
  pips = [l for l in record.read_text().splitlines() if l.startswith("python -m pip")]
  assert any(p.endswith(f"jax[cuda12]=={jax.__version__}") for p in pips), pips
  assert "NVIDIA GPU found (GPU 0: NVIDIA H100" in out.stdout
  # Without a GPU: no CUDA install.
  os.remove(bin_dir / "nvidia-smi")
  record.unlink()
  out = subprocess.run(["bash", os.path.join(REPO, "launch", "setup.sh")], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "cuda" not in record.read_text()


def test_a_gpu_that_jax_cannot_see_is_named_at_the_start(tmp_path, monkeypatch):
  from freqrobust import sharding
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  _script(bin_dir, "nvidia-smi", RECORDER.format(
      extra='echo "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-0000)"'))
  monkeypatch.setenv("RECORD", str(tmp_path / "calls.log"))
  monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
  warning = sharding.unseen_accelerator_warning()  # The tests run JAX on the CPU.
  assert warning.startswith("WARNING: this machine has 1 NVIDIA GPU(s) (GPU 0: NVIDIA A100")
  assert "jax[cuda12]" in warning
  monkeypatch.setenv("PATH", "/nonexistent")
  assert sharding.unseen_accelerator_warning() is None
