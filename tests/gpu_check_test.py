"""bench/gpu_check.sh in its reduced mode (tiny sizes on the CPU) writes every figure."""
import json
import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_reduced_gpu_check_writes_every_figure(tmp_path):
  out = tmp_path / "check"
  env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu", GPU_CHECK_TIMEOUT="400")
  done = subprocess.run(["bash", os.path.join(REPO, "bench", "gpu_check.sh"), str(out),
                         "--reduced"], cwd=str(tmp_path), env=env, capture_output=True,
                        text=True, timeout=450)
  assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
  with open(out / "gpu_check.json") as f:
    figures = json.load(f)
  assert figures["finished"] and figures["mode"] == "reduced" and figures["total_s"] > 0
  assert figures["environment"]["platform"] == "cpu"
  train = figures["train"]
  for dtype in ("float32", "bfloat16"):
    assert train[dtype]["images_per_s"] > 0 and train[dtype]["compile_s"] > 0
    assert train[dtype]["loss_finite"] and train[dtype]["dtype"] == dtype
    assert train[dtype]["attention"] == "extended" and train[dtype]["augment"]
  assert train["bfloat16_speedup"] > 0 and train["scan_speedup"] > 0
  assert train["float32_one_step_per_call"]["steps_per_call"] == 1
  corruption = figures["corruptions"]
  assert corruption["image_shape"] == [32, 32, 3]
  assert len(corruption["images_per_s"]) >= 2
  assert all(rate > 0 for rate in corruption["images_per_s"].values())
  assert corruption["mean_images_per_s"] > 0
  main = figures["main"]
  assert main["exit_code"] == 0 and main["wall_s"] > 0
  assert main["steps_per_s"] > 0 and main["images_per_s"] > 0
  assert main["clean_accuracy"] is not None and main["peak_memory"]["host_rss_mib"] > 0
  text = (out / "gpu_check.txt").read_text()
  assert "REDUCED MODE" in text and "bfloat16" in text and "images/s" in text
  assert "freqrobust.main" in text


def test_gpu_check_without_an_output_dir_prints_its_usage():
  done = subprocess.run(["bash", os.path.join(REPO, "bench", "gpu_check.sh")],
                        capture_output=True, text=True, timeout=30)
  assert done.returncode == 2 and "usage" in done.stderr
