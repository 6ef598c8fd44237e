"""Laws of the training fast path: scanned steps on the device-resident training set equal single
steps (over 8 devices), a resumed scanned run equals an uninterrupted one, bfloat16 compute keeps
float32 weights and a float32-like loss, and the end of training writes its report, figure and
peak memory. Tiny models, 8-12 px images, a few steps."""
import functools
import json
import os
import signal

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from freqrobust import experiment, sharding, train, trained
from freqrobust import ema as ema_lib

import workdirs


paper_config = workdirs.tiny_paper_config


def built(config, devices):
  config = experiment.resolve_config(config)
  exp = experiment.build(config, config.data.synthetic_examples)
  sharder = sharding.Sharder(devices)
  return config, exp, sharder


def float_dtypes(tree):
  return {np.dtype(x.dtype) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)}


@pytest.mark.parametrize("device_data", [True, False])
def test_scanned_steps_on_8_devices_equal_single_steps(device_data):
  assert jax.device_count() == 8, "tests/conftest.py should give 8 fake CPU devices"
  config, exp, sharder = built(paper_config(), jax.devices())
  images, labels = train.load_data(config)[:2]
  order = train.EpochOrder(len(images), config.train.batch_size, config.seed)
  key, n = jax.random.key(1), 4

  # Plain path: one jitted train_step per step, each batch gathered on the host.
  state = exp.init_state(jax.random.key(0), sharder)
  step = jax.jit(functools.partial(train.train_step, method=exp.method, schedule=exp.schedule),
                 in_shardings=(sharder.replicated, sharder.data, sharder.replicated),
                 out_shardings=(sharder.replicated, sharder.replicated))
  plain_losses = []
  for s in range(n):
    idx = order.indices(s)
    state, metrics = step(state, sharder.put({"image": images[idx], "label": labels[idx]}), key)
    plain_losses.append(metrics["loss"])
  plain = jax.device_get((state.params, state.batch_stats, state.opt_state, state.step))

  # Fast path: the same n steps in one scanned call.
  runner = train.StepRunner(exp, sharder, images, labels, order, n, device_data)
  data, xs = runner.inputs(0)
  first = next(iter(xs.values()))
  assert first.shape[:2] == (n, config.train.batch_size)
  assert len(first.sharding.device_set) == 8  # Each step's batch split over the 8 devices.
  if device_data:
    assert data["image"].dtype == jnp.uint8 and data["image"].shape == images.shape
    assert data["image"].sharding.is_fully_replicated
  state, metrics = runner(exp.init_state(jax.random.key(0), sharder), 0, key)
  fast = jax.device_get((state.params, state.batch_stats, state.opt_state, state.step))
  assert fast[3] == plain[3] == n
  chex.assert_trees_all_close(fast[:3], plain[:3], atol=2e-5, rtol=2e-5)
  np.testing.assert_allclose(np.asarray(metrics["loss"]), np.asarray(plain_losses), rtol=2e-5)
  assert set(metrics) >= {"loss", "ce", "aux_loss", "accuracy", "nonfinite"}


def test_ema_run_evaluates_the_ema_of_weights_and_batchnorm_statistics():
  config, exp, sharder = built(paper_config(ema_decay=0.5), jax.devices()[:1])
  images, labels = train.load_data(config)[:2]
  order = train.EpochOrder(len(images), config.train.batch_size, config.seed)
  runner = train.StepRunner(exp, sharder, images, labels, order, 3, True)
  state = exp.init_state(jax.random.key(0), sharder)
  live = experiment.evaluation_variables(config, state)  # Before any step: the live variables.
  chex.assert_trees_all_close(live["batch_stats"], state.batch_stats)
  state, _ = runner(state, 0, jax.random.key(1))
  used = experiment.evaluation_variables(config, state)
  ema = ema_lib._ema_state(state.opt_state)
  assert int(ema.count) == 3 and jax.tree.leaves(ema.batch_stats)
  chex.assert_trees_all_close(used["batch_stats"], jax.tree.map(
      lambda e: e / (1 - 0.5 ** 3), ema.batch_stats), rtol=1e-6)
  # Three steps with decay 0.5 weigh the last statistics 4/7: not the live ones, nor the first.
  mean_of = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])
  assert not np.allclose(mean_of(used["batch_stats"]), mean_of(state.batch_stats))
  assert all(np.any(np.asarray(x) != 0) for x in jax.tree.leaves(used["batch_stats"]))


def test_effective_steps_per_call_divides_every_boundary():
  assert train.effective_steps_per_call(50, (50, 1000, 3900, 35100, 0)) == 50
  assert train.effective_steps_per_call(50, (50, 500, 1404, 2808, 0)) == 2
  assert train.effective_steps_per_call(8, (4, 4, 0, 8, 0)) == 4
  assert train.effective_steps_per_call(8, (8, 8, 0, 8, 3)) == 1  # Resumed off a boundary.
  for k in (1, 7, 10, 64):
    got = train.effective_steps_per_call(k, (50, 1000, 468, 2808, 1000))
    assert k % got == 0 and all(b % got == 0 for b in (50, 1000, 468, 2808, 1000))
  config = experiment.resolve_config(paper_config(steps_per_call=0, log_every_steps=250))
  assert train.requested_steps_per_call(config, "cpu") == 1
  assert train.requested_steps_per_call(config, "gpu") == 100


def final_state(workdir):
  run = trained.load_trained(workdir)
  return jax.device_get(run.variables), run.theta_b, run.step


def test_resumed_scanned_run_equals_uninterrupted_run(tmp_path):
  # 64 examples / 16 = 4 steps per epoch, 2 epochs: two calls of 4 steps.
  config = paper_config(steps_per_call=4, log_every_steps=4, checkpoint_every_steps=4)
  config.evals.clean.every_epochs = 0
  full = train.train_and_evaluate(config, str(tmp_path / "a"))
  assert full["status"] == "finished" and full["step"] == 8

  def preempt(step):  # Inside the first call: the run stops at its end, step 4.
    if step == 2:
      os.kill(os.getpid(), signal.SIGTERM)

  first = train.train_and_evaluate(config, str(tmp_path / "b"), step_callback=preempt)
  assert first == {"status": "preempted", "step": 4}
  resumed = train.train_and_evaluate(config, str(tmp_path / "b"))
  assert resumed["status"] == "finished" and resumed["step"] == 8
  a, b = final_state(tmp_path / "a"), final_state(tmp_path / "b")
  assert a[2] == b[2] == 8
  chex.assert_trees_all_close(a[:2], b[:2], atol=1e-6)
  assert resumed["clean"] == pytest.approx(full["clean"], rel=1e-6)
  with open(tmp_path / "b" / "metrics.jsonl") as f:
    logged = [json.loads(line)["step"] for line in f if '"loss"' in line]
  assert logged == [4, 8]  # One line per log boundary, each the mean of a call's 4 steps.


def test_bfloat16_step_keeps_float32_weights_and_a_close_loss():
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (16, 12, 12, 1)).astype(np.uint8),
           "label": rng.integers(0, 10, 16).astype(np.int32)}
  out = {}
  for dtype in ("float32", "bfloat16"):
    config = paper_config()
    config.model.dtype = dtype
    config, exp, sharder = built(config, jax.devices()[:1])
    state = exp.init_state(jax.random.key(0), sharder)
    assert (float_dtypes((state.params, state.batch_stats, state.opt_state))
            == {np.dtype(np.float32)})
    step = jax.jit(functools.partial(train.train_step, method=exp.method, schedule=exp.schedule))
    state, metrics = step(state, sharder.put(batch), jax.random.key(1))
    assert (float_dtypes((state.params, state.batch_stats, state.opt_state))
            == {np.dtype(np.float32)})
    assert metrics["loss"].dtype == metrics["ce"].dtype == jnp.float32
    out[dtype] = (float(metrics["ce"]), float(metrics["loss"]), jax.device_get(state.params))
  assert np.isfinite(out["bfloat16"][1])
  # Measured (AMD EPYC): CE and loss 2e-4 apart (relative), weights 2.4e-3 (the step moved them
  # by up to 3.7e-2); the bounds leave room for other CPUs' float order.
  np.testing.assert_allclose(out["bfloat16"][0], out["float32"][0], rtol=0.01)
  np.testing.assert_allclose(out["bfloat16"][1], out["float32"][1], rtol=0.01)
  # Same initial weights, one step apart: the bfloat16 step moved them as the float32 step did.
  chex.assert_trees_all_close(out["bfloat16"][2], out["float32"][2], atol=0.01)


def test_new_fields_are_validated():
  for field, value in (("steps_per_call", -1), ("steps_per_call", 2.5), ("device_data", "yes"),
                       ("label_smoothing", 1.0), ("ema_decay", 1.0), ("ema_decay", -0.1),
                       ("test_time_flip", 1)):
    config = paper_config()
    del config.train[field]  # ConfigDict refuses a value of another type; a JSON file does not.
    config.train[field] = value
    with pytest.raises(ValueError, match=rf"config\.train\.{field}="):
      experiment.resolve_config(config)
  config = paper_config()
  config.model.dtype = "float16"
  with pytest.raises(ValueError, match=r"config\.model\.dtype="):
    experiment.resolve_config(config)
  old = paper_config()  # A config.json written before the fields existed still resolves.
  for field in experiment.TRAIN_OPTION_DEFAULTS:
    del old.train[field]
  experiment.resolve_config(old)


def test_label_smoothing_ema_and_flip_laws():
  logits = jnp.asarray([[[2.0, 0.5, -1.0]]])  # (views, N, K)
  labels = jnp.asarray([0])
  eps = 0.1
  targets = np.array([1 - eps + eps / 3, eps / 3, eps / 3])
  expected = -np.sum(targets * np.asarray(jax.nn.log_softmax(logits[0, 0])))
  got = train._cross_entropy(logits, labels, {}, (0,), label_smoothing=eps)
  np.testing.assert_allclose(float(got), expected, rtol=1e-6)
  plain = train._cross_entropy(logits, labels, {}, (0,))
  np.testing.assert_allclose(float(plain), -float(jax.nn.log_softmax(logits[0, 0])[0]), rtol=1e-6)

  # EMA: debiased, so a constant parameter's EMA is that constant; otherwise the weighted mean.
  cfg = paper_config(ema_decay=0.5, weight_decay=0.0, momentum=0.0, learning_rate=1.0)
  tx, _ = experiment.make_optimizer(cfg.train, steps_per_epoch=100)
  params = {"model": {"w": jnp.asarray(4.0)}}
  opt_state = tx.init(params)
  history = []
  for g in (1.0, 2.0, 0.0):
    updates, opt_state = tx.update({"model": {"w": jnp.asarray(g)}}, opt_state, params)
    params = optax.apply_updates(params, updates)
    history.append(float(params["model"]["w"]))
  weights = np.array([0.25, 0.5, 1.0]) * 0.5  # (1 - d) d^(t - i), then divided by 1 - d^3.
  expected = np.dot(weights, history) / (1 - 0.5 ** 3)
  np.testing.assert_allclose(float(experiment.ema_params(opt_state, 0.5, params)["model"]["w"]),
                             expected, rtol=1e-6)

  # The BatchNorm statistics' EMA, kept beside it by the train step, is the same weighted mean.
  opt_state = experiment.init_ema_batch_stats(tx.init(params), {"bn": {"mean": jnp.zeros(2)}})
  live = {"bn": {"mean": jnp.asarray([-1.0, 9.0])}}
  assert experiment.ema_batch_stats(opt_state, 0.5, live) is live  # No update yet: the live ones.
  stats = [np.array([1.0, 2.0]), np.array([3.0, -2.0]), np.array([0.5, 0.0])]
  for g, st in zip((1.0, 2.0, 0.0), stats):
    updates, opt_state = tx.update({"model": {"w": jnp.asarray(g)}}, opt_state, params)
    opt_state = experiment.track_ema_batch_stats(opt_state, {"bn": {"mean": jnp.asarray(st)}})
  np.testing.assert_allclose(experiment.ema_batch_stats(opt_state, 0.5, live)["bn"]["mean"],
                             np.dot(weights, np.stack(stats)) / (1 - 0.5 ** 3), rtol=1e-6)
  # Without an EMA in the chain, the step's call changes nothing.
  plain_tx, _ = experiment.make_optimizer(paper_config().train, steps_per_epoch=100)
  plain_state = plain_tx.init(params)
  assert jax.tree.structure(experiment.track_ema_batch_stats(plain_state, live)) == \
      jax.tree.structure(plain_state)

  class Stub:  # logits = the first row of the image: a mirror image reverses them.
    def apply(self, variables, x, train):
      return x[:, 0, :, 0], None

  x = jnp.arange(8.0).reshape(1, 2, 4, 1)
  np.testing.assert_allclose(experiment.predict_apply(Stub(), True)(None, x),
                             [[1.5, 1.5, 1.5, 1.5]])
  np.testing.assert_allclose(experiment.predict_apply(Stub(), False)(None, x), [[0, 1, 2, 3]])


def test_finished_run_writes_report_figure_and_peak_memory(tmp_path, capsys):
  config = paper_config(max_steps=2, log_every_steps=2, ema_decay=0.9, test_time_flip=True,
                        label_smoothing=0.1)
  config.data.synthetic_size = 8
  config.model.small_widths = (4, 4, 4)
  config.evals.corruptions.at_end = True
  config.evals.summary.at_end = True
  config.corruptions.names = ("gaussian_noise", "contrast")
  config.corruptions.cache_dir = str(tmp_path / "cache")
  config.corruptions.num_examples = 32
  results = train.train_and_evaluate(config, str(tmp_path / "run"))
  out = capsys.readouterr().out
  figure = tmp_path / "run" / "summary.png"
  assert figure.exists() and figure.stat().st_size > 1000
  assert results["evals"]["summary"]["dir"] == str(tmp_path / "run")
  assert 0 <= results["metrics"]["summary/histogram_high_frequency_fraction"] <= 1
  assert results["evaluated_weights"] == "ema" and results["test_time_flip"]
  assert results["peak_memory"]["host_rss_mib"] > 0
  with open(tmp_path / "run" / "results.json") as f:
    written = json.load(f)
  assert written["peak_memory"]["host_rss_mib"] > 0 and written["status"] == "finished"
  assert written["evals"]["corruptions"]["model"].endswith("+flip")
  assert written["model"] == written["evals"]["corruptions"]["model"]
  # `freqrobust.evaluate` and `analyze` load the same evaluation weights (the EMA) and flip-average
  # as training's own evaluation did: the same model key, so a re-evaluation resumes its sets.
  run = trained.load_trained(str(tmp_path / "run"))
  assert run.test_time_flip and run.fingerprint == written["evals"]["corruptions"]["model"]
  assert "Peak memory" in out and "summary" in out and "corruption_eval" in out
