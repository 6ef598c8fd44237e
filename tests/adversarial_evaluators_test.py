"""The adversarial_bands, adversarial_corruptions and adversarial_fourier evaluators: registered, in the default config,
their report columns are metrics they return, their files are written, bad settings are refused
before any work. A fake model (linear, 12x12x1) stands in for a trained run."""
import json
import os
import types

import jax.numpy as jnp
import numpy as np
import pytest

import workdirs
from freqrobust import evaluators
from freqrobust import workdir as workdir_lib
from freqrobust.evaluators import adversarial_bands, base

_rng = np.random.default_rng(5)
W = jnp.asarray(_rng.standard_normal((144, 4)) * 0.5, jnp.float32)


def apply(variables, x):
  return (x.reshape(x.shape[0], -1) - 0.5) @ variables


def context(tmp_path, config):
  images = _rng.integers(0, 256, (10, 12, 12, 1)).astype(np.uint8)
  labels = np.asarray(apply(W, images / 255.0)).argmax(-1)
  model = types.SimpleNamespace(config=config, step=0, apply=apply, variables=W)
  return base.Context(model, str(tmp_path), test_set=(images, labels), progress=False,
                      out_root=str(tmp_path))


def build(config, name):
  (evaluator, _), = evaluators.build(config, [name])
  evaluator.check(config)
  return evaluator


def test_adversarial_bands_evaluator(tmp_path, capsys):
  config = workdirs.tiny_config()
  config.evals.adversarial_bands.update(dict(main_eps=0.05, num_bands=2, apgd_steps=3,
                                             apgd_losses=("ce",), num_examples=8))
  e = build(config, "adversarial_bands")
  ctx = context(tmp_path, config)
  ctx.metrics.update({"adversarial/worst_main": 12.0, "adversarial_corruptions/ua_mean": 40.0})
  out = e.run(ctx)
  for column in e.metric_columns():
    assert 0 <= out[column.metric] <= 100, column.metric
  assert {"dct_band0", "dct_band1", "fft_band0", "fft_band1", "full"} <= set(out)
  flagged = [k for k in ("dct_band0", "dct_band1", "fft_band0", "fft_band1")
             if out[k] < out["full"] - 1.0]
  assert out["masking_flags"] == len(flagged)
  assert 0 <= out["dct_clip_out_of_band"] <= 100
  saved = json.load(open(os.path.join(tmp_path, "evals", "adversarial_bands",
                                      "adversarial_bands.json")))
  assert saved["bands"]["fft"][-1] == [saved["bands"]["fft"][-1][0], "inf"]
  assert os.path.exists(os.path.join(tmp_path, "evals", "adversarial_bands",
                                     "adversarial_bands.png"))
  # One progress line per band, with the count and the ETA (it ran silent for minutes).
  lines = [l for l in capsys.readouterr().out.splitlines() if "% correct on 8 images" in l]
  assert len(lines) == 5 and "(5/5," in lines[-1] and "ETA" in lines[0]


def test_band_edges_cover_every_coefficient_once():
  for kind in ("dct", "fft"):
    edges = adversarial_bands.band_edges(kind, 12, 12, 3)
    from freqrobust.attacks import bands
    masks = sum(bands.band_mask(b, 12, 12) for b in edges)
    np.testing.assert_array_equal(masks, np.ones((12, 12)))
  assert adversarial_bands.band_names(3) == ["low", "mid", "high"]


def test_adversarial_corruptions_evaluator(tmp_path):
  config = workdirs.tiny_config()
  config.evals.adversarial_corruptions.update(dict(attacks=("jpeg",), budgets=("low", "medium"),
                                                   steps=1, num_examples=8, batch_size=8))
  e = build(config, "adversarial_corruptions")
  out = e.run(context(tmp_path, config))
  for column in e.metric_columns():
    assert 0 <= out[column.metric] <= 100, column.metric
  assert out["ua_mean"] == out["jpeg_medium"]
  assert os.path.exists(os.path.join(tmp_path, "evals", "adversarial_corruptions",
                                     "adversarial_corruptions.json"))


def test_adversarial_fourier_evaluator(tmp_path):
  from freqrobust.attacks import fourier_bases
  config = workdirs.tiny_config()
  config.evals.adversarial_fourier.update(dict(eps=(0.5, 3.0), num_examples=8, bases_per_step=8,
                                               images_per_call=5))
  e = build(config, "adversarial_fourier")
  ctx = context(tmp_path, config)
  out = e.run(ctx)
  assert {c.metric for c in e.metric_columns()} <= set(out)
  images, labels = ctx.first_examples(8)
  for eps, k in ((0.5, "0p5"), (3.0, "3")):
    direct = fourier_bases.worst_fourier_basis(apply, images, labels, eps=eps, variables=W)
    assert out[f"acc_eps{k}"] == pytest.approx(100.0 * direct["accuracy"])
    assert out[f"acc_eps{k}_lo"] <= out[f"acc_eps{k}"] <= out[f"acc_eps{k}_hi"]
    assert out[f"acc_eps{k}"] <= out[f"fixed_eps{k}"]
    assert out[f"fixed_eps{k}"] == pytest.approx(100.0 * direct["basis_accuracy"].min())
    thirds = [out[f"{t}_eps{k}"] for t in ("low", "mid", "high")]
    if out[f"acc_eps{k}"] < 100.0:
      assert sum(thirds) == pytest.approx(100.0)
    else:
      assert all(np.isnan(thirds))
  assert out["acc_eps3"] < 100.0  # A norm that breaks something: the thirds are read.
  folder = os.path.join(tmp_path, "evals", "adversarial_fourier")
  saved = json.load(open(os.path.join(folder, "adversarial_fourier.json")))
  # Each image adds 1/8 to its worst pair's one or two cells (two unless self-mirrored).
  assert 1.0 - 1e-6 <= np.sum(saved["heatmaps"]["3"]) <= 2.0 + 1e-6
  assert os.path.exists(os.path.join(folder, "adversarial_fourier.png"))


def test_worst_basis_thirds_follow_the_fft_bands():
  from freqrobust.evaluators import adversarial_fourier
  third = adversarial_fourier._thirds(12, 12)
  from freqrobust.attacks import bands
  for t, b in enumerate(adversarial_bands.band_edges("fft", 12, 12, 3)):
    np.testing.assert_array_equal(third == t, bands.band_mask(b, 12, 12) > 0)


@pytest.mark.parametrize("name,field,value", [
    ("adversarial_bands", "kinds", ("wavelet",)), ("adversarial_bands", "num_bands", 0),
    ("adversarial_bands", "norm", "l1"), ("adversarial_corruptions", "attacks", ("rain",)),
    ("adversarial_corruptions", "budgets", ("extreme",)),
    ("adversarial_corruptions", "steps", -1), ("adversarial_fourier", "eps", (0.0,)),
    ("adversarial_fourier", "eps", ()),
    ("adversarial_fourier", "eps", (1, 1.0)), ("adversarial_fourier", "num_examples", -1),
    ("adversarial_fourier", "bases_per_step", 0)])
def test_bad_settings_are_refused(name, field, value):
  config = workdirs.tiny_config()
  config.evals[name][field] = value
  with pytest.raises(workdir_lib.UserError, match=f"config.evals.{name}.{field}"):
    build(config, name)


def test_new_weights_reuse_the_compiled_attacks(tmp_path):
  """Training's evaluations of successive states: the weights are a traced argument, so a second
  evaluation with new weights traces the model no more (a partial over the weights was a new
  static argument each time: every attack recompiled, the weights baked into each program)."""
  import jax
  traced = {"n": 0}

  def counting(variables, x):
    traced["n"] += isinstance(x, jax.core.Tracer)
    return apply(variables, x)

  config = workdirs.tiny_config()
  config.evals.adversarial_bands.update(dict(main_eps=0.05, num_bands=2, apgd_steps=2,
                                             apgd_losses=("ce",), num_examples=8, kinds=("dct",)))
  config.evals.adversarial_corruptions.update(dict(attacks=("jpeg",), budgets=("low",), steps=1,
                                                   num_examples=8, batch_size=8))
  config.evals.adversarial_fourier.update(dict(eps=(1.0,), num_examples=8, bases_per_step=8))
  for name in ("adversarial_bands", "adversarial_corruptions", "adversarial_fourier"):
    e = build(config, name)
    ctx = context(tmp_path, config)
    ctx.model.apply = counting
    e.run(ctx)
    before = traced["n"]
    ctx = context(tmp_path, config)
    ctx.model.apply, ctx.model.variables = counting, 0.9 * W
    e.run(ctx)
    assert traced["n"] == before, name


@pytest.mark.parametrize("value", ["x", None, True])
def test_main_eps_of_another_type_is_refused_naming_it(value):
  """A config file's main_eps of another type is one UserError naming it (float() raised a bare
  ValueError / TypeError traceback, and True was read as the radius 1)."""
  cls = adversarial_bands.AdversarialBands
  e = cls("adversarial_bands", dict(cls.defaults, main_eps=value))
  with pytest.raises(workdir_lib.UserError, match=r"config\.evals\.adversarial_bands\.main_eps"):
    e.check(workdirs.tiny_config())


@pytest.mark.parametrize("eps", [2.0, "1,2"])
def test_adversarial_fourier_eps_of_another_type_is_refused(eps):
  """A config file's scalar or string eps is a UserError naming the field, not a TypeError."""
  from freqrobust.evaluators import adversarial_fourier
  cls = adversarial_fourier.AdversarialFourier
  with pytest.raises(workdir_lib.UserError, match=r"config\.evals\.adversarial_fourier\.eps"):
    cls("adversarial_fourier", dict(cls.defaults, eps=eps)).check(workdirs.tiny_config())
