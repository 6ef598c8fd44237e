"""Laws of the training system: sharded == single device, resume == uninterrupted, NaN stops,
the auxiliary loss only sees suppressed images, and theta_b learns."""
import dataclasses
import functools
import json
import os
import signal

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from freqrobust import experiment, sharding, train, trained
from freqrobust.augment import aps as aps_lib

import workdirs


def tiny_config(**train_overrides):
  return workdirs.tiny_paper_config(**{"log_every_steps": 2, "checkpoint_every_steps": 2,
                                       **train_overrides})


def setup_step(config, devices):
  config = experiment.resolve_config(config)
  exp = experiment.build(config, 64)
  sharder = sharding.Sharder(devices)
  state = exp.init_state(jax.random.key(0), sharder)
  step = jax.jit(functools.partial(train.train_step, method=exp.method, schedule=exp.schedule),
                 in_shardings=(sharder.replicated, sharder.data, sharder.replicated),
                 out_shardings=(sharder.replicated, sharder.replicated))
  return state, step, sharder


def test_sharded_step_equals_single_device_step():
  assert jax.device_count() == 8, "tests/conftest.py should give 8 fake CPU devices"
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (16, 12, 12, 1)).astype(np.uint8),
           "label": rng.integers(0, 10, 16).astype(np.int32)}
  outs = []
  for devices in (jax.devices()[:1], jax.devices()):
    state, step, sharder = setup_step(tiny_config(), devices)
    put = sharder.put(batch)
    assert len(put["image"].sharding.device_set) == len(devices)  # Really split over 8 devices.
    for _ in range(2):
      state, metrics = step(state, put, jax.random.key(1))
    outs.append((jax.device_get(state.params), jax.device_get(state.batch_stats),
                 jax.device_get(metrics["loss"])))
  chex.assert_trees_all_close(outs[0], outs[1], atol=2e-5, rtol=2e-5)


def test_aux_loss_counts_only_suppressed_images_and_trains_theta():
  method = experiment.build_method(experiment.resolve_config(tiny_config()))
  params = {"aps": {"theta_b": jnp.zeros(3)}}
  v = jnp.full((1, 4, 8), 0.3)  # (views, N, C1)
  aux = {"suppressed": jnp.array([True, False, True, False]), "mask": jnp.array([0, 1, 2, 0]),
         "keep": jnp.array([0.2, 0.5, 0.9, 0.1])}
  loss_of = lambda aux, params, m=method: m.loss_terms(None, v, None, aux, params)["aux_loss"]
  b = 1.1 / 3  # sigmoid(0) / (3 sigmoid(0)) * 1.1.
  beta = np.array([(1 - 0.2) * b + 0.2, (1 - 0.9) * b + 0.9])  # eq. 8 for the two suppressed ones.
  expected = method.aps.aux_weight * np.sum((0.3 - beta) ** 2) / 4
  np.testing.assert_allclose(float(loss_of(aux, params)), expected, rtol=1e-5)
  # Changing the unsuppressed images' masks or keeps changes nothing.
  aux2 = dict(aux, mask=jnp.array([0, 2, 2, 1]), keep=jnp.array([0.2, 0.0, 0.9, 0.7]))
  np.testing.assert_allclose(float(loss_of(aux2, params)), expected, rtol=1e-5)
  grad = jax.grad(lambda p: loss_of(aux, p))(params)
  assert float(jnp.abs(grad["aps"]["theta_b"]).sum()) > 0
  labelled = dataclasses.replace(method, aps=dataclasses.replace(method.aps,
                                                                  aux_average="labelled"))
  np.testing.assert_allclose(float(loss_of(aux, params, labelled)), expected * 2, rtol=1e-5)


def final_params(workdir):
  run = trained.load_trained(workdir)
  return jax.device_get(run.variables), run.theta_b, run.step


def test_preempted_and_resumed_run_equals_uninterrupted_run(tmp_path):
  config = tiny_config()
  full = train.train_and_evaluate(config, str(tmp_path / "a"))
  assert full["status"] == "finished" and full["step"] == 8

  def preempt(step):
    if step == 3:
      os.kill(os.getpid(), signal.SIGTERM)

  first = train.train_and_evaluate(config, str(tmp_path / "b"), step_callback=preempt)
  assert first == {"status": "preempted", "step": 3}
  resumed = train.train_and_evaluate(config, str(tmp_path / "b"))
  assert resumed["status"] == "finished" and resumed["step"] == 8
  a, b = final_params(tmp_path / "a"), final_params(tmp_path / "b")
  assert a[2] == b[2] == 8
  chex.assert_trees_all_close(a[:2], b[:2], atol=1e-6)
  assert resumed["clean"] == pytest.approx(full["clean"], rel=1e-6)
  for name in ("config.json", "metrics.jsonl", "results.json"):
    assert (tmp_path / "b" / name).exists()
  with open(tmp_path / "b" / "results.json") as f:
    results = json.load(f)
  assert set(results["b(M)"]) == {"L", "M", "H"}
  assert abs(sum(results["b(M)"].values()) - 1.1) < 1e-4  # eq. 9.


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config(max_steps=2), workdir)
  good = final_params(workdir)
  with pytest.raises(FloatingPointError, match="last good checkpoint"):
    train.train_and_evaluate(tiny_config(learning_rate=1e30, max_steps=6), workdir)
  after = final_params(workdir)
  assert after[2] == 2
  chex.assert_trees_all_close(good[:2], after[:2])


def test_bad_config_fails_early_with_the_valid_values():
  config = tiny_config()
  config.aps.configuration = "LMH=021"
  with pytest.raises(ValueError, match="learnable"):
    experiment.resolve_config(config)
  config = tiny_config(batch_size=12)
  with pytest.raises(ValueError, match="divisible by the number of devices"):
    experiment.resolve_config(config)


def test_quickstart_trains_the_full_method_and_reports_corruptions_and_the_figure():
  from configs import quickstart
  from freqrobust import corruptions
  from freqrobust.data import corrupted
  config = experiment.resolve_config(quickstart.get_config())
  method = experiment.build_method(config)
  assert isinstance(method, aps_lib.PaperMethod)
  assert method.augment.suppress_prob > 0 and method.augment.nfd  # Suppression and NFD.
  assert method.aps.enabled and method.aps.aux_weight > 0  # APS with its auxiliary term.
  assert config.model.attention == "extended"
  assert config.evals.corruptions.at_end and config.corruptions.num_examples >= 1000
  settings = corrupted.CorruptionSettings.from_config(config)
  assert tuple(settings.names) == tuple(corruptions.CORRUPTIONS) and len(settings.names) == 15
  assert config.evals.summary.at_end
  # Literature convention for every reported number: no test-time augmentation.
  assert not config.train.test_time_flip
  # The baselines' CPU protocol is the quickstart's budget: paper_both_att,cpu is the quickstart
  # but for the quickstart's second block at 7x7 (and the figure).
  from configs import baselines
  other = experiment.resolve_config(baselines.get_config("paper_both_att,cpu"))
  assert tuple(other.model.small_stage_sizes) == (0, 1, 1)
  assert tuple(config.model.small_stage_sizes) == (0, 1, 2)
  other.evals.summary.at_end = True
  other.model.small_stage_sizes = config.model.small_stage_sizes
  assert other.to_dict() == config.to_dict()


def _schedule_config(schedule, epochs=5, warmup=0.2, lr=0.1):
  return ml_collections.ConfigDict(dict(
      schedule=schedule, num_epochs=epochs, warmup_epochs=warmup, learning_rate=lr,
      decay_epochs=2, decay_factor=0.1))


def test_learning_rate_schedules_by_their_laws():
  """experiment.SCHEDULES: the per-step learning rate of each schedule, at the CPU protocol's
  shape (5 epochs of 100 steps, 0.2 warm-up epochs, peak 0.1)."""
  import math
  steps = jnp.arange(501)
  rates = lambda name, **kw: np.asarray(
      experiment.make_schedule(_schedule_config(name, **kw), steps_per_epoch=100)(steps))
  # "cosine" (every CPU run in docs/RESULTS.md): warm-up, then a cosine over the whole run that
  # starts at the end of the warm-up, so the last step keeps (1 + cos(pi 480 / 500)) / 2 of it.
  legacy = optax.join_schedules([optax.linear_schedule(0.0, 0.1, 20),
                                 optax.cosine_decay_schedule(0.1, 500)], [20])
  cosine = rates("cosine")
  np.testing.assert_array_equal(cosine, np.asarray(legacy(steps)))
  np.testing.assert_allclose(cosine[[0, 10, 20]], [0., 0.05, 0.1], rtol=1e-6)
  np.testing.assert_allclose(cosine[500], 0.1 * (1 + math.cos(math.pi * 480 / 500)) / 2, rtol=1e-4)
  assert 0.003 < cosine[500] / 0.1 < 0.005
  # "warmup_cosine": the same warm-up, then down to 0 at the last step, never increasing.
  full = rates("warmup_cosine")
  np.testing.assert_allclose(full[[0, 10, 20]], [0., 0.05, 0.1], rtol=1e-6)
  assert full[500] == pytest.approx(0., abs=1e-9) and np.all(np.diff(full[20:]) <= 1e-9)
  np.testing.assert_allclose(full[260], 0.05, rtol=1e-4)  # half-way through the cosine
  # "step": x 0.1 every 2 epochs from step 0, the warm-up overlaid without moving the decays.
  step = rates("step")
  np.testing.assert_allclose(step[[10, 20, 199, 200, 399, 400]],
                             [0.05, 0.1, 0.1, 0.01, 0.01, 0.001], rtol=1e-5)
  np.testing.assert_allclose(rates("step", warmup=0.0)[[0, 199, 200]], [0.1, 0.1, 0.01],
                             rtol=1e-5)
