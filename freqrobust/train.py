"""Training: a pure, data-parallel train step over any augmentation `Method`, and the run loop.

The step is one `jax.jit` over the `('data',)` mesh (`freqrobust.sharding`): the batch sharded
`P('data')`, the state replicated `P()`. The loss is the CE of the method's CE views plus the
method's own terms (for the paper's method, APS's auxiliary L2 term of eq. 10).
"""
from __future__ import annotations

import errno
import functools
import signal
from typing import Any, Callable, Dict, List, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from freqrobust import checkpoint, data as data_lib, evaluate as evaluate_lib, experiment
from freqrobust import frequency, progress as progress_lib, sharding, trained
from freqrobust import workdir as workdir_lib
from freqrobust.augment.base import Method, soft_cross_entropy
from freqrobust.experiment import TrainState
from freqrobust.workdir import UserError


# ----------------------------------------------------------------------------- the steps


def _cross_entropy(logits: jax.Array, labels: jax.Array, aux: Dict[str, jax.Array],
                   views) -> jax.Array:
  """Mean CE over the CE views; per-view labels (aux "labels") or soft targets
  (aux "label_weights") replace the batch's labels when the method gives them."""
  terms = []
  for v in views:
    if "label_weights" in aux:
      terms.append(soft_cross_entropy(logits[v], aux["label_weights"][v]))
    else:
      target = aux["labels"][v] if "labels" in aux else labels
      terms.append(optax.softmax_cross_entropy_with_integer_labels(logits[v], target).mean())
  return sum(terms) / len(terms)


def train_step(state: TrainState, batch: Dict[str, jax.Array], key: jax.Array, *,
               method: Method, schedule: Callable) -> tuple[TrainState, Dict[str, jax.Array]]:
  """One SGD step on a (sharded) uint8 batch; pure: (state, batch, key) -> (state, metrics)."""
  images = batch["image"].astype(jnp.float32) / 255.0
  labels = batch["label"]
  frozen = {"params": jax.lax.stop_gradient(state.params["model"]),
            "batch_stats": state.batch_stats}
  forward = lambda x: state.apply_fn(frozen, x, train=False)[0]
  views, aux = method.views(jax.random.fold_in(key, state.step), images, labels, forward)
  num_views, n = views.shape[:2]

  def loss_fn(params):
    (logits, open_ratios), new_vars = state.apply_fn(
        {"params": params["model"], "batch_stats": state.batch_stats},
        views.reshape((num_views * n,) + views.shape[2:]), train=True, mutable=["batch_stats"])
    logits = logits.reshape(num_views, n, -1)
    if open_ratios is not None:
      open_ratios = open_ratios.reshape(num_views, n, -1)
    ce = _cross_entropy(logits, labels, aux, method.ce_views)
    terms = method.loss_terms(logits, open_ratios, labels, aux, params)
    logged = dict(ce=ce, accuracy=jnp.mean(jnp.argmax(logits[0], -1) == labels), **terms,
                  **method.step_metrics(open_ratios, aux, params))
    return ce + sum(terms.values()), (new_vars.get("batch_stats", {}), logged)

  (loss, (batch_stats, logged)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  b_metrics = {}
  if "aps" in state.params:  # The learned b(M) after the update (eq. 9).
    b = frequency.basic_open_ratios(state.params["aps"]["theta_b"])
    b_metrics = dict(b_L=b[0], b_M=b[1], b_H=b[2])
  metrics = dict(logged, **b_metrics, loss=loss, learning_rate=schedule(state.step - 1),
                 nonfinite=(~jnp.isfinite(loss)).astype(jnp.int32))
  return state, metrics


def clean_accuracy(predictor: sharding.BatchedPredict, state: TrainState, images: np.ndarray,
                   labels: np.ndarray) -> Dict[str, float]:
  """Accuracy (%) and mean CE on every example of a uint8 test set."""
  variables = {"params": state.params["model"], "batch_stats": state.batch_stats}
  logits = predictor(variables, np.asarray(images, np.float32) / 255.0)
  log_probs = jax.nn.log_softmax(jnp.asarray(logits))
  loss = -float(jnp.mean(jnp.take_along_axis(log_probs, jnp.asarray(labels)[:, None], 1)))
  return {"accuracy": 100.0 * float(np.mean(logits.argmax(-1) == labels)), "loss": loss,
          "examples": int(len(labels))}


@jax.jit
def all_finite(tree) -> jax.Array:
  return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def mean_metrics(pending: List[Dict[str, Any]]) -> Dict[str, float]:
  """Means of per-step device metrics (one host transfer); `nonfinite` is summed instead."""
  stacked = jax.device_get(pending)
  return {k: float(np.sum([m[k] for m in stacked]) if k == "nonfinite" else
                   np.mean([m[k] for m in stacked], dtype=np.float64)) for k in stacked[0]}


# ----------------------------------------------------------------------------- data order


class EpochOrder:
  """Seeded per-epoch permutation: the data order is a function of (seed, step) alone, so a
  restored step number restores the data order exactly."""

  def __init__(self, num_examples: int, batch_size: int, seed: int):
    self.n, self.batch_size, self.seed = num_examples, batch_size, seed
    self.steps_per_epoch = num_examples // batch_size
    if self.steps_per_epoch == 0:
      raise UserError(f"The training set has {num_examples} examples, fewer than one batch of "
                      f"{batch_size}; lower config.train.batch_size.")
    self._epoch, self._perm = -1, None

  def indices(self, step: int) -> np.ndarray:
    epoch, i = divmod(step, self.steps_per_epoch)
    if epoch != self._epoch:
      self._epoch = epoch
      self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
    return self._perm[i * self.batch_size:(i + 1) * self.batch_size]


# ----------------------------------------------------------------------------- the run


class _Preemption:
  """Turns SIGTERM into a flag the loop checks, so the run saves and exits cleanly."""

  def __init__(self):
    self.requested, self._previous = False, None

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


def _info(message: str) -> None:
  if jax.process_index() == 0:
    print(message, flush=True)


def load_data(config: ml_collections.ConfigDict):
  """(train images, train labels, test images, test labels), uint8 NHWC / int32."""
  train_images, train_labels = data_lib.load_split(config.data, "train")
  if config.data.train_examples:
    train_images = train_images[:config.data.train_examples]
    train_labels = train_labels[:config.data.train_examples]
  return (train_images, train_labels) + tuple(data_lib.load_split(config.data, "test"))


def _no_space(error: BaseException) -> bool:
  return (isinstance(error, OSError) and error.errno == errno.ENOSPC) or \
      "No space left on device" in str(error)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       step_callback: Optional[Callable[[int], None]] = None) -> Dict[str, Any]:
  """Trains into `workdir` (resuming from its newest intact checkpoint), evaluates, writes
  results.json. Holds the workdir's lock throughout: a second run on it is refused.

  Returns the results dict; `status` is "finished" or "preempted" (SIGTERM: saved, then left).
  """
  config = experiment.resolve_config(config)
  with workdir_lib.locked(workdir):
    return _train_and_evaluate(config, workdir, step_callback)


def _restore(exp: experiment.Experiment, sharder: sharding.Sharder, workdir: str, key):
  """(state, start step, manager). config.json is compared first and written only once the
  restore succeeded, so a refused config leaves the workdir as it was."""
  config = exp.config
  changed = workdir_lib.config_changes(workdir, config)
  manager = checkpoint.make_manager(workdir, config.train.keep_checkpoints)
  try:
    state, start_step, manager = checkpoint.restore_latest(manager, exp.init_state(key, sharder))
  except checkpoint.IncompatibleCheckpoint as err:
    raise UserError(f"{err} Fields that differ from {workdir}/config.json: "
                    f"{'; '.join(changed) or 'none'}.") from None
  if start_step:
    _info(f"Resumed from the checkpoint of step {start_step} in {manager.directory}.")
    dropped = workdir_lib.truncate_metrics(workdir, start_step)
    if dropped:
      _info(f"Dropped {dropped} metrics.jsonl lines logged after step {start_step}.")
    if changed:
      _info("WARNING: this workdir was started with another config; resuming with the new "
            f"values of: {'; '.join(changed)}. Use a fresh --workdir to start over.")
  if jax.process_index() == 0:
    workdir_lib.write_config(workdir, config)
  return state, start_step, manager


def _train_and_evaluate(config, workdir, step_callback):
  train_images, train_labels, test_images, test_labels = load_data(config)
  exp = experiment.build(config, len(train_images))
  order = EpochOrder(len(train_images), config.train.batch_size, config.seed)
  total_steps = config.train.num_epochs * exp.steps_per_epoch
  if config.train.max_steps:
    total_steps = min(total_steps, config.train.max_steps)
  sharder = sharding.Sharder()
  init_key, step_key = jax.random.split(jax.random.key(config.seed))
  state, start_step, manager = _restore(exp, sharder, workdir, init_key)
  step_fn = jax.jit(functools.partial(train_step, method=exp.method, schedule=exp.schedule),
                    in_shardings=(sharder.replicated, sharder.data, sharder.replicated),
                    out_shardings=(sharder.replicated, sharder.replicated), donate_argnums=(0,))
  predictor = sharding.BatchedPredict(lambda v, x: exp.model.apply(v, x, train=False)[0],
                                      config.eval.batch_size, sharder)
  log = workdir_lib.MetricsWriter(workdir, enabled=jax.process_index() == 0)
  _info(f"Training {config.model.name} (attention={config.model.attention}, method="
        f"{exp.method.name}) on {config.data.dataset}: {len(train_images)} images, "
        f"{exp.steps_per_epoch} steps/epoch, steps {start_step}..{total_steps}, "
        f"{sharder.num_devices} device(s) ({jax.devices()[0].platform}).")
  try:
    state, step, status, last_good = _loop(
        config, state, start_step, total_steps, step_fn, step_key, (train_images, train_labels),
        order, sharder, manager, log,
        lambda s: clean_accuracy(predictor, s, test_images, test_labels), step_callback)
    manager.wait_until_finished()
  except BaseException as err:
    log.close()
    if _no_space(err):
      latest = manager.latest_step()
      raise UserError(f"No space left on device at {workdir}; the last checkpoint (step "
                      f"{latest or 0}) is intact. Free some space and rerun the same command "
                      "to resume.") from None
    raise
  if status == "preempted":
    log.close()
    return {"status": status, "step": step}
  results = _finish(config, exp, state, step, predictor, test_images, test_labels, workdir, log,
                    sharder)
  log.close()
  manager.close()
  return results


def _loop(config, state, step, total_steps, step_fn, step_key, train_data, order, sharder,
          manager, log, evaluate_clean, step_callback):
  """The training loop; returns (state, step, status, last good checkpoint step)."""
  train_images, train_labels = train_data
  local = sharder.local_slice(config.train.batch_size)
  eval_every = int(config.train.eval_every_epochs * order.steps_per_epoch)  # 0: end only.
  progress = progress_lib.TrainProgress(step, total_steps, order.steps_per_epoch,
                                        enabled=jax.process_index() == 0)
  pending, last_good, status = [], step, "finished"
  with _Preemption() as preemption:
    while step < total_steps:
      idx = order.indices(step)[local]
      batch = sharder.put({"image": train_images[idx], "label": train_labels[idx]})
      state, metrics = step_fn(state, batch, step_key)
      pending.append(metrics)
      step += 1
      if step_callback is not None:
        step_callback(step)
      save_now = step % config.train.checkpoint_every_steps == 0 or step == total_steps
      if save_now or preemption.requested or step % config.train.log_every_steps == 0:
        summary, pending = mean_metrics(pending), []
        if summary.pop("nonfinite") > 0:
          _raise_nonfinite(step, last_good, manager)
        log.write(step, summary)
        progress.update(step, summary)
      if eval_every and step % eval_every == 0 and step != total_steps:
        log.write(step, {f"test_{k}": v for k, v in evaluate_clean(state).items()})
      if save_now or preemption.requested:
        if not bool(all_finite(state.params)):  # Never overwrite good weights with bad ones.
          _raise_nonfinite(step, last_good, manager)
        checkpoint.save(manager, step, state)
        last_good = step
      if preemption.requested:
        _info(f"SIGTERM: saved the checkpoint of step {step}; rerun the same command to resume.")
        return state, step, "preempted", last_good
  return state, step, status, last_good


def _raise_nonfinite(step: int, last_good: int, manager) -> None:
  manager.wait_until_finished()
  kept = (f"The last good checkpoint (step {last_good}) is kept in {manager.directory}; rerun "
          "to resume from it" if last_good else "No checkpoint had been saved yet")
  raise FloatingPointError(
      f"The loss or the parameters became NaN/Inf by step {step}; training stopped. {kept}. "
      "Lower config.train.learning_rate or config.aps.aux_weight.")


def _finish(config, exp, state, step, predictor, test_images, test_labels, workdir, log,
            sharder) -> Dict[str, Any]:
  """Clean (and, when configured, corruption) evaluation; writes results.json."""
  results = {"status": "finished", "step": int(state.step), "epochs": step / exp.steps_per_epoch,
             "method_choices": experiment.method_choices(config),
             "clean": clean_accuracy(predictor, state, test_images, test_labels)}
  if "aps" in state.params:
    theta = np.asarray(state.params["aps"]["theta_b"])
    results["theta_b"] = theta.tolist()
    results["b(M)"] = dict(zip("LMH", np.asarray(frequency.basic_open_ratios(theta)).tolist()))
  _info(f"Clean test accuracy {results['clean']['accuracy']:.2f}% "
        f"({results['clean']['examples']} examples).")
  log.write(step, {f"test_{k}": v for k, v in results["clean"].items()})
  write = jax.process_index() == 0
  if write:
    workdir_lib.write_results(workdir, results)
  if config.corruptions.evaluate:
    variables = {"params": state.params["model"], "batch_stats": state.batch_stats}
    results["corruptions"] = evaluate_lib.run_corruption_eval(
        predictor.bind(variables), config, workdir,
        baseline_workdir=config.corruptions.baseline_workdir or None, step=step,
        model_fingerprint=trained.fingerprint(variables))
    if write:
      workdir_lib.write_results(workdir, results)
  return results
