"""Every registered augmentation method trains through the one generic train step, and a
baseline trains from the command line with its config (configs/baselines.py)."""
import functools
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import baselines
from freqrobust import experiment, sharding, train
from freqrobust.augment import registry

import workdirs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(method: str):
  config = workdirs.tiny_config()
  config.data.synthetic_size = 16
  config.data.synthetic_channels = 3
  config.model.attention = "none"
  config.method = method
  config.method_args = baselines._defaults(registry.METHODS[method])
  return experiment.resolve_config(config)


@pytest.mark.parametrize("method", sorted(registry.METHODS))
def test_method_trains_through_the_generic_step(method):
  config = tiny(method)
  exp = experiment.build(config, 64)
  sharder = sharding.Sharder(jax.devices()[:1])
  state = exp.init_state(jax.random.key(0), sharder)
  before = jax.device_get(state.params)
  step = jax.jit(functools.partial(train.train_step, method=exp.method, schedule=exp.schedule))
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (16, 16, 16, 3)).astype(np.uint8),
           "label": rng.integers(0, 10, 16).astype(np.int32)}
  state, metrics = step(state, batch, jax.random.key(1))
  assert np.isfinite(float(metrics["loss"])) and int(metrics["nonfinite"]) == 0
  changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                         before, jax.device_get(state.params))
  assert any(jax.tree.leaves(changed))  # The step learned something.


def test_baseline_with_attention_is_refused():
  config = workdirs.tiny_config()
  config.method = "gaussian"
  config.method_args = baselines._defaults(registry.METHODS["gaussian"])
  with pytest.raises(ValueError, match="attention"):
    experiment.resolve_config(config)


def test_every_baseline_config_resolves():
  for arg in baselines.runs("all", cpu=True) + baselines.runs("all")[:3]:
    config = experiment.resolve_config(baselines.get_config(arg))
    assert config.corruptions.evaluate


def test_cli_trains_a_baseline(tmp_path):
  env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
  out = subprocess.run(
      [sys.executable, "-m", "freqrobust.main", "--config=configs/baselines.py:augmix,cpu",
       f"--workdir={tmp_path}", "--config.data.dataset=synthetic",
       "--config.data.synthetic_size=16", "--config.data.synthetic_channels=3",
       "--config.data.synthetic_examples=32", "--config.model.small_widths=(4, 4, 4)",
       "--config.train.batch_size=16", "--config.train.num_epochs=1",
       "--config.eval.batch_size=16", "--config.corruptions.evaluate=false"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "method=augmix" in out.stdout
  with open(tmp_path / "results.json") as f:
    results = json.load(f)
  assert results["status"] == "finished" and results["method_choices"]["method"] == "augmix"
