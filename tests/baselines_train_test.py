"""Every registered augmentation method trains through the one generic train step, and a
baseline trains from the command line with its config (configs/baselines.py)."""
import functools
import json
import os
import subprocess
import sys

import flax
import jax
import numpy as np
import optax
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
  config.method_args = baselines._defaults(registry.BASELINES[method])
  return experiment.resolve_config(config)


@pytest.mark.parametrize("method", sorted(registry.BASELINES))
def test_method_trains_through_the_generic_step(method):
  config = tiny(method)
  exp = experiment.build(config, 64)
  sharder = sharding.Sharder(jax.devices()[:1])
  state = exp.init_state(jax.random.key(0), sharder)
  before = jax.device_get(state.params)
  step = jax.jit(functools.partial(train.train_step, method=exp.method, schedule=exp.schedule,
                                   aux_bn=exp.model.aux_bn))
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (16, 16, 16, 3)).astype(np.uint8),
           "label": rng.integers(0, 10, 16).astype(np.int32)}
  state, metrics = step(state, batch, jax.random.key(1))
  assert np.isfinite(float(metrics["loss"])) and int(metrics["nonfinite"]) == 0
  changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                         before, jax.device_get(state.params))
  assert any(jax.tree.leaves(changed))  # The step learned something.
  assert exp.model.aux_bn == bool(exp.method.aux_bn_views)  # config.train.aux_bn defaults to True.
  if exp.model.aux_bn:  # The auxiliary BatchNorms are trained by their views.
    flat = flax.traverse_util.flatten_dict(changed)
    assert any(v for k, v in flat.items() if "aux" in k)
    assert any(v for k, v in flat.items() if "main" in k)


@pytest.mark.parametrize("method", ["apr_p", "hybrid_ps"])
def test_paired_ce_uses_the_runs_label_smoothing(method):
  """APR's and HybridAugment's loss is CE(view 0) + CE(view 1); with label smoothing both CEs
  use the smoothed targets (one protocol for every CE of a run), logged as ce and ce_paired."""
  exp = experiment.build(tiny(method), 64)
  assert exp.method.ce_views == (0,) and exp.method.ce_paired_views == (1,)
  assert exp.method.loss_terms(None, None, None, {}, None) == {}
  sharder = sharding.Sharder(jax.devices()[:1])
  state = exp.init_state(jax.random.key(0), sharder)
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (16, 16, 16, 3)).astype(np.uint8),
           "label": rng.integers(0, 10, 16).astype(np.int32)}
  key, eps = jax.random.key(1), 0.1
  # The step's own views and logits, recomputed outside it.
  images = batch["image"].astype(np.float32) / 255.0
  views, _ = exp.method.views(jax.random.fold_in(key, state.step), images, batch["label"])
  logits, _, _ = train._apply_views(state.apply_fn, state.params["model"], state.batch_stats,
                                    views)
  targets = optax.smooth_labels(jax.nn.one_hot(batch["label"], 10), eps)
  want = [float(optax.softmax_cross_entropy(logits[v], targets).mean()) for v in (0, 1)]
  hard = float(optax.softmax_cross_entropy_with_integer_labels(logits[1], batch["label"]).mean())
  assert abs(hard - want[1]) > 1e-3  # Smoothing changes the paired term.
  for smoothing, expected in ((eps, want), (0.0, None)):
    step = jax.jit(functools.partial(train.train_step, method=exp.method, schedule=exp.schedule,
                                     label_smoothing=smoothing))
    _, metrics = step(state, batch, key)
    if expected is None:  # Without smoothing: the hard-label CE, as the reference code.
      np.testing.assert_allclose(float(metrics["ce_paired"]), hard, rtol=2e-4)
      continue
    np.testing.assert_allclose(float(metrics["ce"]), expected[0], rtol=2e-4)
    np.testing.assert_allclose(float(metrics["ce_paired"]), expected[1], rtol=2e-4)
    np.testing.assert_allclose(float(metrics["loss"]), sum(expected), rtol=2e-4)


def _stats(tree, route):
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(tree))
  return {k: v for k, v in flat.items() if route in k}


def test_aux_bn_views_are_normalised_apart():
  """AFA's view 1 goes through the auxiliary BatchNorms with its own batch statistics: the main
  statistics after the step are those of view 0 alone, the aux ones those of view 1 alone, and
  each view's logits are what its route gives it alone. Without aux views (or with
  train.aux_bn=False) all views share one call and the main BatchNorms."""
  exp = experiment.build(tiny("afa"), 64)
  assert exp.model.aux_bn and exp.method.aux_bn_views == (1,)
  views = jax.random.uniform(jax.random.key(0), (2, 6, 16, 16, 3))
  variables = exp.model.init(jax.random.key(1), views[0])
  logits, _, stats = train._apply_views(exp.model.apply, variables["params"],
                                        variables["batch_stats"], views, (1,))
  (main_logits, _), main_only = exp.model.apply(variables, views[0], train=True,
                                                mutable=["batch_stats"])
  (aux_logits, _), aux_only = exp.model.apply(variables, views[1], train=True, bn_route="aux",
                                              mutable=["batch_stats"])
  for route, alone in (("main", main_only), ("aux", aux_only)):
    got, want = _stats(stats, route), _stats(alone["batch_stats"], route)
    assert got.keys() == want.keys() and got
    for k in got:
      np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(logits[0], main_logits, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(logits[1], aux_logits, rtol=1e-4, atol=1e-5)
  # Shared: one call over both views, main statistics over all 12 images, aux untouched.
  _, _, shared = train._apply_views(exp.model.apply, variables["params"],
                                    variables["batch_stats"], views)
  _, together = exp.model.apply(variables, views.reshape((12, 16, 16, 3)), train=True,
                                mutable=["batch_stats"])
  for k, v in _stats(shared, "main").items():
    np.testing.assert_allclose(v, _stats(together["batch_stats"], "main")[k], rtol=1e-5,
                               atol=1e-6)
  for k, v in _stats(shared, "aux").items():
    np.testing.assert_array_equal(v, _stats(variables["batch_stats"], "aux")[k])


def test_aux_bn_is_a_config_choice():
  assert experiment.method_choices(tiny("afa"))["aux_bn_views"] == [1]  # In results.json.
  config = tiny("afa")
  config.train.aux_bn = False
  assert not experiment.build(config, 64).model.aux_bn
  assert experiment.method_choices(config)["aux_bn_views"] == []
  del config.train["aux_bn"]  # A config.json written before the field: no auxiliary BN.
  assert not experiment.build(config, 64).model.aux_bn
  assert not experiment.build(tiny("gaussian"), 64).model.aux_bn  # No aux views, no aux BN.
  config = tiny("afa")
  del config.train["aux_bn"]
  config.train.aux_bn = "yes"  # E.g. from a hand-edited config.json.
  with pytest.raises(ValueError, match="train.aux_bn"):
    experiment.resolve_config(config)


def test_baseline_with_attention_is_refused():
  config = workdirs.tiny_config()
  config.method = "gaussian"
  config.method_args = baselines._defaults(registry.BASELINES["gaussian"])
  with pytest.raises(ValueError, match="attention"):
    experiment.resolve_config(config)


def test_every_baseline_config_resolves():
  for arg in baselines.runs("all", cpu=True) + baselines.runs("all")[:3]:
    config = experiment.resolve_config(baselines.get_config(arg))
    assert config.evals.corruptions.at_end


def test_baseline_config_refuses_a_backbone_beside_cpu():
  # `cpu` trains the small ResNet whatever the argument says; naming another model is an error.
  with pytest.raises(ValueError, match="vgg16_bn.*cpu.*small ResNet"):
    baselines.get_config("augmix,vgg16_bn,cpu")
  assert baselines.get_config("augmix,vgg16_bn").model.name == "vgg16_bn"
  assert baselines.get_config("augmix,cpu,seed=1").model.name == "small_resnet"


def test_cli_trains_a_baseline(tmp_path):
  env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
  out = subprocess.run(
      [sys.executable, "-m", "freqrobust.main", "--config=configs/baselines.py:augmix,cpu",
       f"--workdir={tmp_path}", "--config.data.dataset=synthetic",
       "--config.data.synthetic_size=16", "--config.data.synthetic_channels=3",
       "--config.data.synthetic_examples=32", "--config.model.small_widths=(4, 4, 4)",
       "--config.train.batch_size=16", "--config.train.num_epochs=1",
       "--config.eval.batch_size=16", "--config.evals.corruptions.at_end=false"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "method=augmix" in out.stdout
  with open(tmp_path / "results.json") as f:
    results = json.load(f)
  assert results["status"] == "finished" and results["method_choices"]["method"] == "augmix"
