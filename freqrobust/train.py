"""Training: a pure, data-parallel train step over any augmentation `Method`, and the run loop.

The step is one `jax.jit` over the `('data',)` mesh (`freqrobust.sharding`): the batch sharded
`P('data')`, the state replicated `P()`. The loss is the CE of the method's CE views plus the
method's own terms (for the paper's method, APS's auxiliary L2 term of eq. 10).

The loop's fast path (`train_steps`, `StepRunner`): the uint8 training set is put on every device
once (`config.train.device_data`) and each step's batch is gathered there from the seeded
per-epoch permutation (`EpochOrder`, a function of (seed, step) alone: only the indices travel);
`lax.scan` runs K = `config.train.steps_per_call` steps per call, with K dividing the interval of
every in-loop action (logging, evaluations, checkpoints: `freqrobust.loop`, which runs the loop),
so a resumed run repeats an uninterrupted one call for call; the state is donated and metrics stay
on the devices until a log boundary. `config.model.dtype="bfloat16"` computes in bfloat16 with float32 master weights, and
the loss in float32.
"""
from __future__ import annotations

import errno
import functools
import resource
import sys
from typing import Any, Callable, Dict, List, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from freqrobust import checkpoint, data as data_lib, evaluators, experiment, loop as loop_lib
from freqrobust import distributed, frequency, progress as progress_lib, sharding, trained
from freqrobust import workdir as workdir_lib
from freqrobust.augment.base import Method, soft_cross_entropy
from freqrobust.experiment import TrainState, train_option
from freqrobust.workdir import UserError
# The loop's parts, moved to freqrobust/loop.py; their names stay here too.
from freqrobust.loop import effective_steps_per_call, kept_every_steps, mean_metrics  # noqa


# ----------------------------------------------------------------------------- the steps


def _cross_entropy(logits: jax.Array, labels: jax.Array, aux: Dict[str, jax.Array],
                   views, label_smoothing: float = 0.0) -> jax.Array:
  """Mean CE over the CE views, in float32 whatever the compute dtype; per-view labels (aux
  "labels") or soft targets (aux "label_weights") replace the batch's labels when the method
  gives them. `label_smoothing` > 0 mixes every target with the uniform distribution."""
  logits = logits.astype(jnp.float32)
  terms = []
  for v in views:
    if "label_weights" in aux:
      targets = aux["label_weights"][v].astype(jnp.float32)
    else:
      target = aux["labels"][v] if "labels" in aux else labels
      if not label_smoothing:
        terms.append(optax.softmax_cross_entropy_with_integer_labels(logits[v], target).mean())
        continue
      targets = jax.nn.one_hot(target, logits.shape[-1], dtype=jnp.float32)
    if label_smoothing:
      targets = optax.smooth_labels(targets, label_smoothing)
    terms.append(soft_cross_entropy(logits[v], targets))
  return sum(terms) / len(terms)


def _apply_views(apply_fn, params, batch_stats, views, aux_views=()):
  """Training-mode forward of (V, N, ...) views: ((V, N, K) logits, (V, N, C1) or None open
  ratios, new batch_stats). All views go through the main BatchNorms in one call (batch
  statistics over all V * N images), except those in `aux_views`: these go through the auxiliary
  BatchNorms in a second call, with their own batch statistics."""
  n = views.shape[1]

  def forward(group_views, stats, route):
    g = group_views.shape[0]
    (logits, open_ratios), new_vars = apply_fn(
        {"params": params, "batch_stats": stats},
        group_views.reshape((g * n,) + views.shape[2:]), train=True, mutable=["batch_stats"],
        bn_route=route)
    if open_ratios is not None:
      open_ratios = open_ratios.reshape(g, n, -1)
    return (logits.astype(jnp.float32).reshape(g, n, -1), open_ratios,
            new_vars.get("batch_stats", {}))

  if not aux_views:
    return forward(views, batch_stats, "main")
  main = tuple(v for v in range(views.shape[0]) if v not in aux_views)
  if not main:
    raise ValueError(f"aux_bn_views={tuple(aux_views)} leaves no view for the main BatchNorms.")
  order = main + tuple(aux_views)
  logits_m, ratios_m, batch_stats = forward(views[jnp.asarray(main)], batch_stats, "main")
  logits_a, ratios_a, batch_stats = forward(views[jnp.asarray(aux_views)], batch_stats, "aux")
  back = jnp.asarray([order.index(v) for v in range(views.shape[0])])  # Back to view order.
  logits = jnp.concatenate([logits_m, logits_a])[back]
  open_ratios = None if ratios_m is None else jnp.concatenate([ratios_m, ratios_a])[back]
  return logits, open_ratios, batch_stats


def train_step(state: TrainState, batch: Dict[str, jax.Array], key: jax.Array, *,
               method: Method, schedule: Callable, label_smoothing: float = 0.0,
               aux_bn: bool = False) -> tuple[TrainState, Dict[str, jax.Array]]:
  """One SGD step on a (sharded) uint8 batch; pure: (state, batch, key) -> (state, metrics).
  `aux_bn`: the model has auxiliary BatchNorms, and `method.aux_bn_views` go through them."""
  images = batch["image"].astype(jnp.float32) / 255.0
  labels = batch["label"]
  frozen = {"params": jax.lax.stop_gradient(state.params["model"]),
            "batch_stats": state.batch_stats}

  def forward(x, bn: str = "running"):
    # bn="running": inference mode (running statistics); "batch": the statistics of `x` itself,
    # as in training, with the running statistics left untouched (adversarial training's choice).
    if bn == "running":
      return state.apply_fn(frozen, x, train=False)[0].astype(jnp.float32)
    if bn != "batch":
      raise ValueError(f"forward(bn={bn!r}); valid: 'running', 'batch'.")
    (logits, _), _ = state.apply_fn(frozen, x, train=True, mutable=["batch_stats"])
    return logits.astype(jnp.float32)

  views, aux = method.views(jax.random.fold_in(key, state.step), images, labels, forward)
  aux_views = tuple(method.aux_bn_views) if aux_bn else ()

  def loss_fn(params):
    logits, open_ratios, batch_stats = _apply_views(state.apply_fn, params["model"],
                                                    state.batch_stats, views, aux_views)
    ce = _cross_entropy(logits, labels, aux, method.ce_views, label_smoothing)
    terms = method.loss_terms(logits, open_ratios, labels, aux, params)
    if method.ce_paired_views:  # A sum of CEs, each with the run's targets (base.Method).
      terms = dict(terms, ce_paired=len(method.ce_paired_views) * _cross_entropy(
          logits, labels, aux, method.ce_paired_views, label_smoothing))
    logged = dict(ce=ce, accuracy=jnp.mean(jnp.argmax(logits[0], -1) == labels), **terms,
                  **method.step_metrics(open_ratios, aux, params))
    return ce + sum(terms.values()), (batch_stats, logged)

  (loss, (batch_stats, logged)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  # The EMA of the BatchNorm statistics beside the optimizer's EMA of the weights (a no-op
  # without config.train.ema_decay).
  state = state.replace(opt_state=experiment.track_ema_batch_stats(state.opt_state, batch_stats))
  # A method's metrics are the values its step used (APS's b(M): before the update); a name
  # logged twice would silently lose one of them, so none may shadow the step's own.
  reserved = {"loss", "learning_rate", "nonfinite"} & set(logged)
  if reserved:
    raise ValueError(f"Method {method.name!r} logs {sorted(reserved)}, names of the train step's "
                     "own metrics; rename them.")
  metrics = dict(logged, loss=loss, learning_rate=schedule(state.step - 1),
                 nonfinite=(~jnp.isfinite(loss)).astype(jnp.int32))
  return state, metrics


def train_steps(state: TrainState, data: Optional[Dict[str, jax.Array]],
                xs: Dict[str, jax.Array], key: jax.Array, *, method: Method, schedule: Callable,
                label_smoothing: float = 0.0, batch_sharding: Optional[Any] = None,
                aux_bn: bool = False) -> tuple[TrainState, Dict[str, jax.Array]]:
  """K train steps in one call (`lax.scan` over the leading axis of `xs`); pure.

  Device-resident data: `data` = {"image": (N, H, W, C) uint8, "label": (N,)} (the training set,
  on every device) and `xs` = {"index": (K, B) int32}, the rows of each step's batch. Host-fed:
  `data` = None and `xs` = {"image": (K, B, H, W, C), "label": (K, B)}, the K batches. Each step
  is `train_step` on its batch (constrained to `batch_sharding`, the data-parallel layout), so K
  steps here equal K calls of `train_step` up to float reordering. Returns the state after the K
  steps and every metric with a leading axis K.
  """
  step = functools.partial(train_step, key=key, method=method, schedule=schedule,
                           label_smoothing=label_smoothing, aux_bn=aux_bn)

  def body(state, x):
    if data is None:
      batch = {"image": x["image"], "label": x["label"]}
    else:
      batch = {k: jnp.take(v, x["index"], axis=0, mode="clip") for k, v in data.items()}
    if batch_sharding is not None:
      batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
    return step(state, batch)

  if next(iter(xs.values())).shape[0] == 1:
    # No loop for one step: XLA:CPU runs a while loop's body 10-20x slower than the same ops
    # outside one (measured on the small ResNet step, with and without freqrobust.platform's
    # flags), and one step per call is the CPU default.
    state, metrics = body(state, jax.tree.map(lambda a: a[0], xs))
    return state, jax.tree.map(lambda m: jnp.asarray(m)[None], metrics)
  return jax.lax.scan(body, state, xs)


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


# ----------------------------------------------------------------------------- the fast path


def requested_steps_per_call(config: ml_collections.ConfigDict, platform: str) -> int:
  """config.train.steps_per_call, with 0 (auto) read as 1 on the CPU (a CPU step dwarfs the
  dispatch, and XLA:CPU runs the scanned steps' while loop 10-20x slower, see `train_steps`) and
  as min(log_every_steps, 100) on accelerators."""
  requested = int(train_option(config, "steps_per_call"))
  if requested:
    return requested
  return 1 if platform == "cpu" else min(int(config.train.log_every_steps), 100)


def _fits_on_devices(nbytes: int, sharder: sharding.Sharder) -> bool:
  """Whether a replicated array of `nbytes` takes at most a quarter of each device's memory
  (devices that do not report their memory, such as the CPU, are assumed to fit it)."""
  for device in sharder.devices:
    if device.process_index != jax.process_index():
      continue
    try:
      stats = device.memory_stats()
    except Exception:  # Not every backend implements it.
      stats = None
    if stats and stats.get("bytes_limit") and nbytes > stats["bytes_limit"] / 4:
      return False
  return True


class StepRunner:
  """Runs the jitted K-step function (`train_steps`) from a step number: the seeded order's
  indices are the only per-call host input when the training set lives on the devices.

  `runner(state, step, key)` -> (state after steps [step, step + K), metrics (K, ...)).
  """

  def __init__(self, exp: experiment.Experiment, sharder: sharding.Sharder,
               train_images: np.ndarray, train_labels: np.ndarray, order: EpochOrder,
               steps_per_call: int, device_data: bool, label_smoothing: float = 0.0):
    self.sharder, self.order, self.k = sharder, order, int(steps_per_call)
    self.images, self.labels = train_images, train_labels
    self.local = sharder.local_slice(order.batch_size)
    self.stacked = NamedSharding(sharder.mesh, P(None, "data"))  # (K, B): B split over devices.
    self.device_data = bool(device_data)
    self.data = None
    if self.device_data:
      self.data = {"image": self._replicate(np.asarray(train_images, np.uint8)),
                   "label": self._replicate(np.asarray(train_labels, np.int32))}
    fn = functools.partial(train_steps, method=exp.method, schedule=exp.schedule,
                           label_smoothing=float(label_smoothing), batch_sharding=sharder.data,
                           aux_bn=bool(exp.model.aux_bn))
    self.fn = jax.jit(fn, in_shardings=(sharder.replicated,
                                        sharder.replicated if self.device_data else None,
                                        self.stacked, sharder.replicated),
                      out_shardings=(sharder.replicated, sharder.replicated), donate_argnums=(0,))

  def _replicate(self, array: np.ndarray) -> jax.Array:
    return jax.make_array_from_process_local_data(self.sharder.replicated, array)

  def _put(self, array: np.ndarray) -> jax.Array:
    return jax.make_array_from_process_local_data(self.stacked, array)

  def inputs(self, step: int) -> tuple[Optional[Dict[str, jax.Array]], Dict[str, jax.Array]]:
    """(data, xs) for steps [step, step + K)."""
    idx = np.stack([self.order.indices(s)[self.local] for s in range(step, step + self.k)])
    if self.device_data:
      return self.data, {"index": self._put(idx.astype(np.int32))}
    return None, {"image": self._put(self.images[idx]), "label": self._put(self.labels[idx])}

  def __call__(self, state: TrainState, step: int, key: jax.Array):
    data, xs = self.inputs(step)
    return self.fn(state, data, xs, key)


def peak_memory() -> Dict[str, Optional[float]]:
  """Peak resident memory of this process (getrusage ru_maxrss) and, where the backend reports
  it, the first local device's peak allocation, in MiB."""
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  rss_mib = rss / 2 ** 20 if sys.platform == "darwin" else rss / 1024  # bytes / KiB
  device_mib = None
  try:
    stats = jax.local_devices()[0].memory_stats()
    if stats and "peak_bytes_in_use" in stats:
      device_mib = stats["peak_bytes_in_use"] / 2 ** 20
  except Exception:  # Not every backend implements it.
    pass
  return {"host_rss_mib": round(rss_mib, 1),
          "device_peak_mib": None if device_mib is None else round(device_mib, 1)}


# ----------------------------------------------------------------------------- the run


def _info(message: str) -> None:
  if jax.process_index() == 0:
    progress_lib.say(message)


def load_data(config: ml_collections.ConfigDict):
  """(train images, train labels, test images, test labels), uint8 NHWC / int32."""
  train_images, train_labels = data_lib.training_set(config)
  return (train_images, train_labels) + tuple(data_lib.load_split(config.data, "test"))


def _no_space(error: BaseException) -> bool:
  return (isinstance(error, OSError) and error.errno == errno.ENOSPC) or \
      "No space left on device" in str(error)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       step_callback: Optional[Callable[[int], None]] = None) -> Dict[str, Any]:
  """Trains into `workdir` (resuming from its newest intact checkpoint), evaluates, writes
  results.json. Holds the workdir's lock throughout: a second run on it is refused.

  Returns the results dict; `status` is "finished" or "preempted" (SIGTERM: saved, then left).
  `step_callback(step)` is called for every step once the call that ran it has returned (with K
  steps per call, K times after each call); a SIGTERM is acted on at the end of a call.
  """
  config = experiment.resolve_config(config)
  workdir_lib.check_workdir(workdir)  # A URL epath cannot write is refused before any work.
  # Every process must run the same config (a collective: a mismatch fails in all at once).
  distributed.agree(config.to_json_best_effort(sort_keys=True), "resolved config")
  warning = sharding.unseen_accelerator_warning()
  if warning:
    _info(warning)
  # Process 0 holds the lock for all; a busy workdir is refused in every process at once.
  with distributed.held_by_writer(lambda: workdir_lib.locked(workdir)):
    return _train_and_evaluate(config, workdir, step_callback)


def _restore(exp: experiment.Experiment, sharder: sharding.Sharder, workdir: str, key):
  """(state, start step, manager). config.json is compared first and written only once the
  restore succeeded, so a refused config leaves the workdir as it was."""
  config = exp.config
  # Process 0 reads config.json; every process gets its answer (or its error).
  changed = distributed.decide(lambda: workdir_lib.config_changes(workdir, config))
  manager = checkpoint.make_manager(workdir, config.train.keep_checkpoints,
                                    loop_lib.kept_every_steps(config, exp.steps_per_epoch))
  try:
    state, start_step, manager = checkpoint.restore_latest(manager, exp.init_state(key, sharder))
  except checkpoint.IncompatibleCheckpoint as err:
    raise UserError(f"{err} Fields that differ from {workdir}/config.json: "
                    f"{'; '.join(changed) or 'none'}.") from None
  if start_step:
    _info(f"Resumed from the checkpoint of step {start_step} in {manager.directory}.")
    dropped = distributed.decide(lambda: workdir_lib.truncate_metrics(workdir, start_step))
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
  platform = sharder.devices[0].platform
  # Everything the loop does between calls, with its interval: K divides every one of them.
  actions = loop_lib.actions(config, order.steps_per_epoch,
                             evaluators.in_loop(config, order.steps_per_epoch))
  k = loop_lib.steps_per_call(requested_steps_per_call(config, platform), actions, total_steps,
                              start_step)
  device_data = bool(train_option(config, "device_data"))
  if device_data and not _fits_on_devices(train_images.nbytes + train_labels.nbytes, sharder):
    device_data = False
    _info(f"The training set ({train_images.nbytes / 2 ** 20:.0f} MiB) takes more than a quarter "
          "of a device's memory: batches are fed from the host instead.")
  runner = StepRunner(exp, sharder, train_images, train_labels, order, k, device_data,
                      train_option(config, "label_smoothing"))
  if k > 1 and platform == "cpu":
    _info(f"WARNING: {k} steps per call on the CPU: XLA:CPU runs the scanned steps 10-20x slower "
          "than single steps; set config.train.steps_per_call=1 (or 0, auto) for CPU runs.")
  predictor = trained.predictor_of(config, exp.model, sharder)
  log = workdir_lib.MetricsWriter(workdir, enabled=jax.process_index() == 0)
  _info(f"Training {config.model.name} (attention={config.model.attention}, method="
        f"{exp.method.name}, {config.model.dtype}) on {config.data.dataset}: "
        f"{len(train_images)} images ({'on the devices' if device_data else 'fed from the host'}), "
        f"{exp.steps_per_epoch} steps/epoch, steps {start_step}..{total_steps}, {k} step(s) per "
        f"call, {sharder.num_devices} device(s) ({platform}).")

  def evaluate_in_loop(state, step, due):
    """The in-loop evaluations due at `step`: scalars only, logged as an eval line."""
    model = trained.from_state(config, exp.model, state, step, sharder, predictor)
    context = evaluators.Context(model, workdir, test_set=(test_images, test_labels),
                                 progress=False, write_files=False)
    return {k: v for e in due for k, v in evaluators.prefixed(e.name, e.run(context)).items()}

  loop = loop_lib.Loop(state=state, step=start_step, total_steps=total_steps,
                       steps_per_epoch=order.steps_per_epoch, runner=runner, key=step_key,
                       log=log, manager=manager, evaluate=evaluate_in_loop,
                       step_callback=step_callback)
  try:
    status = loop_lib.run(loop, actions)
    state, step = loop.state, loop.step
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
  results = _finish(config, exp, state, step, sharder, predictor, (test_images, test_labels),
                    workdir, log)
  log.close()
  manager.close()
  return results


def _finish(config, exp, state, step, sharder, predictor, test_set, workdir,
            log) -> Dict[str, Any]:
  """Records the trained model in results.json (status "trained"), runs every evaluation of
  config.evals with at_end (each recorded as it finishes: an interrupted evaluation resumes on the
  next run of the same command), then marks the run "finished" and prints where everything is."""
  model = trained.from_state(config, exp.model, state, step, sharder, predictor)
  write = distributed.is_writer()
  # Every process must run the same evaluations (their predictions are collectives): process 0
  # reads what is already recorded and tells the others.
  previous = distributed.decide(
      lambda: evaluators.normalize_results(workdir_lib.read_results(workdir)) or {})
  results = {"status": "trained", "step": int(state.step), "epochs": step / exp.steps_per_epoch,
             "model": model.fingerprint,
             "method_choices": experiment.method_choices(config, exp.method),
             "evaluated_weights": "ema" if train_option(config, "ema_decay") else "final",
             "test_time_flip": model.test_time_flip}
  if model.theta_b is not None:
    results["theta_b"] = model.theta_b.tolist()
    results["b(M)"] = dict(zip("LMH", np.asarray(
        frequency.basic_open_ratios(model.theta_b)).tolist()))
  # Records of this model's evaluations from an earlier, interrupted run of the same command.
  records = {name: r for name, r in (previous.get("evals") or {}).items()
             if r.get("model") == model.fingerprint and r.get("step") == results["step"]}

  def save(records):
    if write:
      workdir_lib.write_results(workdir, dict(results, **evaluators.results_fields(records),
                                              peak_memory=peak_memory()))

  save(records)
  context = evaluators.Context(model, workdir, test_set=test_set)
  flat = evaluators.run_evals(context, evaluators.at_end(config), records, save, _info)
  log.write(step, flat, kind="eval")
  results.update(status="finished", **evaluators.results_fields(records),
                 peak_memory=peak_memory())
  if write:
    workdir_lib.write_results(workdir, results)
  memory = results["peak_memory"]
  _info(f"Peak memory: {memory['host_rss_mib']:.0f} MiB resident (host)"
        + (f", {memory['device_peak_mib']:.0f} MiB on device 0" if memory["device_peak_mib"]
           is not None else "") + ".")
  written = [f"{name} -> {r['dir']}" for name, r in records.items()
              if write and workdir_lib.exists(r["dir"])]
  _info(f"Results: {workdir_lib.path(workdir, workdir_lib.RESULTS)}"
        + (f"; evaluation outputs: {', '.join(written)}" if written else ""))
  return results
