"""Training: a pure, data-parallel train step (CE + lambda * L_aux) and `train_and_evaluate`.

Data parallelism is one `jax.jit` over a `('data',)` mesh: the batch is sharded `P('data')`, the
state replicated `P()`. The same code runs on one CPU, on 8 fake CPU devices (tests) and on every
GPU/TPU of a cluster (each host feeds its slice of the global batch).
"""
import functools
import json
import math
import os
import signal
import time
from typing import Any, Callable, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from freqrobust import augment, frequency
from freqrobust import checkpoint as ckpt
from freqrobust import data as data_lib
from freqrobust import models
from freqrobust import run_log


class TrainState(struct.PyTreeNode):
  step: jax.Array
  params: Any  # {"model": ..., "aps": {"theta_b": (3,)}} (the "aps" entry only when learnable).
  batch_stats: Any
  opt_state: Any


# ----------------------------------------------------------------------------- configuration


def resolve_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Validates the config and fills the dataset-derived fields (input statistics)."""
  config = ml_collections.ConfigDict(config.to_dict())
  info = data_lib.dataset_info(config.data)
  if not config.model.input_mean:
    config.model.input_mean = tuple(info["mean"])
  if not config.model.input_std:
    config.model.input_std = tuple(info["std"])
  frequency.parse_aps_configuration(config.aps.configuration)
  augment.AugmentParams.from_config(config.augment)  # Bad augmentation fields fail here, early.
  models.build_model(config.model, info["num_classes"])  # So do bad model fields.
  for field in ("train.log_every_steps", "train.checkpoint_every_steps", "train.decay_epochs",
                "train.keep_checkpoints", "train.batch_size", "eval.batch_size"):
    section, name = field.split(".")
    if config[section][name] <= 0:
      raise ValueError(f"config.{field}={config[section][name]} must be positive.")
  if config.train.eval_every_epochs < 0:
    raise ValueError("config.train.eval_every_epochs must be >= 0 (0 = only at the end).")
  if config.aps.aux_average not in ("batch", "labelled"):
    raise ValueError(f"config.aps.aux_average={config.aps.aux_average!r}; valid: batch, labelled.")
  if config.train.schedule not in ("step", "cosine"):
    raise ValueError(f"config.train.schedule={config.train.schedule!r}; valid: step, cosine.")
  n_dev = jax.device_count()
  for field in ("train.batch_size", "eval.batch_size"):
    section, name = field.split(".")
    if config[section][name] % n_dev:
      raise ValueError(f"config.{field}={config[section][name]} must be divisible by the number of "
                       f"devices ({n_dev}).")
  return config


def is_learnable(config) -> bool:
  return (config.model.attention != "none"
          and frequency.parse_aps_configuration(config.aps.configuration).learnable)


def make_optimizer(config, steps_per_epoch: int) -> Tuple[optax.GradientTransformation, Callable]:
  """SGD with momentum and weight decay (model parameters only), step or cosine schedule."""
  tc = config.train
  total = max(1, tc.num_epochs * steps_per_epoch)
  if tc.schedule == "step":
    boundaries = {int(k * tc.decay_epochs * steps_per_epoch): tc.decay_factor
                  for k in range(1, int(math.ceil(tc.num_epochs / tc.decay_epochs)))}
    schedule = optax.piecewise_constant_schedule(tc.learning_rate, boundaries)
  else:
    schedule = optax.cosine_decay_schedule(tc.learning_rate, total)
  warmup = int(tc.warmup_epochs * steps_per_epoch)
  if warmup:
    schedule = optax.join_schedules(
        [optax.linear_schedule(0.0, tc.learning_rate, warmup), schedule], [warmup])
  decay_mask = lambda params: {k: jax.tree.map(lambda _: k == "model", v) for k, v in params.items()}
  tx = optax.chain(
      optax.add_decayed_weights(tc.weight_decay, mask=decay_mask),
      optax.sgd(schedule, momentum=tc.momentum, nesterov=tc.nesterov))
  return tx, schedule


def create_train_state(key, model, tx, config, image_shape) -> TrainState:
  variables = model.init(key, jnp.zeros((1,) + tuple(image_shape), jnp.float32), train=False)
  params = {"model": variables["params"]}
  if is_learnable(config):
    params["aps"] = {"theta_b": jnp.asarray(config.aps.theta_init, jnp.float32)}
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params))


# ----------------------------------------------------------------------------- loss and steps


def aux_loss(v, aux, params, config) -> Tuple[jax.Array, jax.Array]:
  """lambda * (mean(v) - beta)^2 for suppressed images (eq. 10); returns (loss, mean beta)."""
  theta = params["aps"]["theta_b"] if is_learnable(config) else None
  label = jax.vmap(lambda m, k: frequency.aps_label(m, k, config.aps.configuration, theta))
  beta = label(aux["mask"], aux["keep"])
  weight = aux["suppressed"].astype(jnp.float32)
  per_image = (jnp.mean(v.astype(jnp.float32), axis=-1) - beta) ** 2 * weight
  if config.aps.aux_average == "batch":
    denom = weight.shape[0]
  else:
    denom = jnp.maximum(weight.sum(), 1.0)
  mean_beta = jnp.sum(beta * weight) / jnp.maximum(weight.sum(), 1.0)
  return config.aps.aux_weight * per_image.sum() / denom, mean_beta


def train_step(state: TrainState, batch: Dict[str, jax.Array], key: jax.Array, *, model, tx,
               schedule, aug_params, config) -> Tuple[TrainState, Dict[str, jax.Array]]:
  """One SGD step on a (sharded) batch; pure: (state, batch, key) -> (state, metrics)."""
  images = batch["image"].astype(jnp.float32) / 255.0
  labels = batch["label"]
  images, aux = augment.augment_batch(jax.random.fold_in(key, state.step), images, aug_params)

  def loss_fn(params):
    (logits, v), new_vars = model.apply(
        {"params": params["model"], "batch_stats": state.batch_stats}, images, train=True,
        mutable=["batch_stats"])
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    extras = {"ce": ce, "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}
    loss = ce
    if v is not None:
      la, beta = aux_loss(v, aux, params, config)
      loss = loss + la
      extras.update(aux_loss=la, open_ratio=jnp.mean(v), aux_label=beta)
    return loss, (new_vars.get("batch_stats", {}), extras)

  (loss, (batch_stats, extras)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = dict(loss=loss, learning_rate=schedule(state.step),
                 suppressed=jnp.mean(aux["suppressed"].astype(jnp.float32)), **extras)
  if is_learnable(config):
    b = frequency.basic_open_ratios(params["aps"]["theta_b"])
    metrics.update(b_L=b[0], b_M=b[1], b_H=b[2])
  metrics["nonfinite"] = (~jnp.isfinite(loss)).astype(jnp.int32)
  new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                            opt_state=opt_state)
  return new_state, metrics


def eval_step(state: TrainState, batch: Dict[str, jax.Array], *, model) -> Dict[str, jax.Array]:
  """Sums of correct predictions, loss and count over the real (mask = 1) examples of a batch."""
  images = batch["image"].astype(jnp.float32) / 255.0
  logits, _ = model.apply({"params": state.params["model"], "batch_stats": state.batch_stats},
                          images, train=False)
  mask = batch["mask"].astype(jnp.float32)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
  return dict(correct=jnp.sum((jnp.argmax(logits, -1) == batch["label"]) * mask),
              loss=jnp.sum(loss * mask), count=jnp.sum(mask))


@jax.jit
def all_finite(tree) -> jax.Array:
  return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


# ----------------------------------------------------------------------------- data feeding


class Sharder:
  """The mesh and the host-to-device transfer of global batches (each host gives its slice)."""

  def __init__(self, devices=None):
    self.mesh = Mesh(np.asarray(devices if devices is not None else jax.devices()), ("data",))
    self.data = NamedSharding(self.mesh, P("data"))
    self.replicated = NamedSharding(self.mesh, P())

  def local_slice(self, global_batch: int) -> slice:
    per_host = global_batch // jax.process_count()
    start = jax.process_index() * per_host
    return slice(start, start + per_host)

  def put(self, batch: Dict[str, np.ndarray]) -> Dict[str, jax.Array]:
    return {k: jax.make_array_from_process_local_data(self.data, v) for k, v in batch.items()}


class EpochOrder:
  """Seeded per-epoch permutation: the data order is a function of (seed, step) alone, so a
  restored step number restores the data order exactly."""

  def __init__(self, num_examples: int, batch_size: int, seed: int):
    self.n, self.batch_size, self.seed = num_examples, batch_size, seed
    self.steps_per_epoch = num_examples // batch_size
    if self.steps_per_epoch == 0:
      raise ValueError(f"The training set has {num_examples} examples, fewer than one batch of "
                       f"{batch_size}; lower config.train.batch_size.")
    self._epoch, self._perm = -1, None

  def indices(self, step: int) -> np.ndarray:
    epoch, i = divmod(step, self.steps_per_epoch)
    if epoch != self._epoch:
      self._epoch = epoch
      self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
    return self._perm[i * self.batch_size:(i + 1) * self.batch_size]


def eval_batches(images, labels, batch_size: int, local: slice):
  """Fixed-size batches covering every example; the last one is padded and masked."""
  n = len(images)
  for start in range(0, n, batch_size):
    idx = np.arange(start, start + batch_size)
    mask = idx < n
    idx = np.where(mask, idx, 0)
    yield {"image": images[idx][local], "label": labels[idx][local],
           "mask": mask.astype(np.int32)[local]}


def make_eval_fn(model, sharder: Sharder, batch_size: int):
  step = jax.jit(functools.partial(eval_step, model=model),
                 in_shardings=(sharder.replicated, sharder.data), out_shardings=sharder.replicated)

  def evaluate(state, images, labels) -> Dict[str, float]:
    sums = None
    for batch in eval_batches(images, labels, batch_size, sharder.local_slice(batch_size)):
      out = step(state, sharder.put(batch))
      sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
    count = float(sums["count"])
    return {"accuracy": 100.0 * float(sums["correct"]) / count, "loss": float(sums["loss"]) / count,
            "examples": int(count)}

  return evaluate


# ----------------------------------------------------------------------------- the run


class _Preemption:
  """Turns SIGTERM into a flag the loop checks, so the run saves and exits cleanly."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # Not the main thread: no handler, the flag stays False.
      self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def build(config, num_train: int):
  """Model, optimizer, schedule and augmentation parameters of a resolved config."""
  info = data_lib.dataset_info(config.data)
  model = models.build_model(config.model, info["num_classes"])
  steps_per_epoch = max(1, num_train // config.train.batch_size)
  tx, schedule = make_optimizer(config, steps_per_epoch)
  aug_params = augment.AugmentParams.from_config(config.augment)
  return model, tx, schedule, aug_params, steps_per_epoch


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       step_callback: Optional[Callable[[int], None]] = None) -> Dict[str, Any]:
  """Trains (resuming from the latest checkpoint in `workdir`), evaluates, writes results.json.

  Returns the results dict; `status` is "finished" or "preempted" (SIGTERM: saved, then left).
  """
  config = resolve_config(config)
  os.makedirs(workdir, exist_ok=True)
  log = run_log.RunLog(workdir, enabled=jax.process_index() == 0)
  changed = run_log.config_changes(workdir, config)
  if changed:
    log.info("WARNING: this workdir was started with another config; resuming with the new values "
             f"of: {', '.join(changed)}. Use a fresh --workdir to start over.")
  log.write_config(config)

  train_images, train_labels = data_lib.load_split(config.data, "train")
  if config.data.train_examples:
    train_images = train_images[:config.data.train_examples]
    train_labels = train_labels[:config.data.train_examples]
  test_images, test_labels = data_lib.load_split(config.data, "test")
  image_shape = train_images.shape[1:]

  model, tx, schedule, aug_params, steps_per_epoch = build(config, len(train_images))
  sharder = Sharder()
  key = jax.random.key(config.seed)
  init_key, step_key = jax.random.split(key)
  state = jax.jit(functools.partial(create_train_state, model=model, tx=tx, config=config,
                                    image_shape=image_shape),
                  out_shardings=sharder.replicated)(init_key)
  manager = ckpt.make_manager(workdir, config.train.keep_checkpoints)
  state, start_step = ckpt.restore_latest(manager, state)
  if start_step:
    log.info(f"Resumed from the checkpoint of step {start_step} in {manager.directory}.")

  total_steps = config.train.num_epochs * steps_per_epoch
  if config.train.max_steps:
    total_steps = min(total_steps, config.train.max_steps)
  order = EpochOrder(len(train_images), config.train.batch_size, config.seed)
  local = sharder.local_slice(config.train.batch_size)
  p_train_step = jax.jit(
      functools.partial(train_step, model=model, tx=tx, schedule=schedule, aug_params=aug_params,
                        config=config),
      in_shardings=(sharder.replicated, sharder.data, sharder.replicated),
      out_shardings=(sharder.replicated, sharder.replicated), donate_argnums=(0,))
  evaluate = make_eval_fn(model, sharder, config.eval.batch_size)
  eval_every = config.train.eval_every_epochs * steps_per_epoch  # 0: only at the end.
  last_good = start_step

  log.info(f"Training {config.model.name} (attention={config.model.attention}) on "
           f"{config.data.dataset}: {len(train_images)} images, {steps_per_epoch} steps/epoch, "
           f"steps {start_step}..{total_steps}, {jax.device_count()} device(s) "
           f"({jax.devices()[0].platform}).")
  progress = run_log.Progress(start_step, total_steps, steps_per_epoch)
  pending, nonfinite = [], 0
  status = "finished"
  with _Preemption() as preemption:
    step = start_step
    while step < total_steps:
      idx = order.indices(step)[local]
      batch = sharder.put({"image": train_images[idx], "label": train_labels[idx]})
      state, metrics = p_train_step(state, batch, step_key)
      pending.append(metrics)
      step += 1
      if step_callback is not None:
        step_callback(step)
      boundary = step % config.train.log_every_steps == 0 or step == total_steps
      save_now = step % config.train.checkpoint_every_steps == 0 or step == total_steps
      if boundary or save_now or preemption.requested:
        summary = run_log.mean_metrics(pending)
        pending = []
        if summary.pop("nonfinite") > 0:
          nonfinite = step
          break
        log.metrics(step, summary)
        progress.update(step, summary)
      if eval_every and step % eval_every == 0 and step != total_steps:
        log.metrics(step, {f"test_{k}": v for k, v in evaluate(state, test_images, test_labels).items()})
      if save_now or preemption.requested:
        if not bool(all_finite(state.params)):  # Never overwrite good weights with bad ones.
          nonfinite = step
          break
        ckpt.save(manager, step, state)
        last_good = step
      if preemption.requested:
        status = "preempted"
        log.info(f"SIGTERM: saved the checkpoint of step {step}; rerun the same command to resume.")
        break
  manager.wait_until_finished()
  if nonfinite:
    log.close()
    kept = (f"The last good checkpoint (step {last_good}) is kept in {manager.directory}; "
            "rerun to resume from it" if last_good else "No checkpoint had been saved yet")
    raise FloatingPointError(
        f"The loss or the parameters became NaN/Inf by step {nonfinite}; training stopped. {kept}. "
        "Lower config.train.learning_rate or config.aps.aux_weight.")
  if status == "preempted":
    log.close()
    return {"status": status, "step": step}

  results = {"status": status, "step": int(state.step), "epochs": step / steps_per_epoch,
             "clean": evaluate(state, test_images, test_labels)}
  if is_learnable(config):
    theta = np.asarray(state.params["aps"]["theta_b"])
    results["theta_b"] = theta.tolist()
    results["b(M)"] = dict(zip("LMH", np.asarray(frequency.basic_open_ratios(theta)).tolist()))
  log.info(f"Clean test accuracy {results['clean']['accuracy']:.2f}% "
           f"({results['clean']['examples']} examples).")
  log.metrics(step, {f"test_{k}": v for k, v in results["clean"].items()})
  log.write_results(results)
  if config.corruptions.evaluate:
    from freqrobust import evaluate as evaluate_lib  # Heavy: only when asked.
    predict = ckpt.make_predict_fn(model, {"params": state.params["model"],
                                           "batch_stats": state.batch_stats}, sharder,
                                   config.eval.batch_size)
    results["corruptions"] = evaluate_lib.run_corruption_eval(
        predict, config, workdir, baseline_workdir=config.corruptions.baseline_workdir or None,
        step=step)
    log.write_results(results)
  log.close()
  return results
