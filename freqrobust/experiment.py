"""Building an experiment from a config: validation, model, augmentation method, optimizer, state.

`resolve_config(config)` checks every field before any work (naming the field and its valid
range) and fills the dataset-derived ones; `build(config, num_train)` returns an `Experiment`, the
named set-up that training, evaluation and analysis share; `Experiment.init_state(key, sharder)`
creates the `TrainState` directly replicated over the mesh.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from freqrobust import augment, data as data_lib, evaluators, frequency, models
from freqrobust.augment import aps as aps_lib
from freqrobust.augment import base as method_base
from freqrobust.augment import registry
from freqrobust.native import conv as native_conv
from freqrobust.sharding import Sharder
from freqrobust.workdir import UserError

Method = method_base.Method


class TrainState(train_state.TrainState):
  """Flax's train state (step, apply_fn, params, tx, opt_state) plus BatchNorm statistics.

  params = {"model": the backbone's parameters, **method.init_params()} (APS: "aps": theta_b).
  Parameters, BatchNorm statistics and optimizer state are float32 whatever
  config.model.dtype (the compute dtype): bfloat16 runs keep float32 master weights.
  """
  batch_stats: Any = None


# Fields of config.train added with the fast path, with the value a config.json written before
# them (an older run's workdir) stands for.
TRAIN_OPTION_DEFAULTS = {"steps_per_call": 0, "device_data": True, "label_smoothing": 0.0,
                         "ema_decay": 0.0, "test_time_flip": False, "keep_every_epochs": 0.0,
                         "aux_bn": False}


def train_option(config: ml_collections.ConfigDict, name: str) -> Any:
  """config.train.<name> for the fields of TRAIN_OPTION_DEFAULTS, their default when absent."""
  return config.train.get(name, TRAIN_OPTION_DEFAULTS[name])


# ----------------------------------------------------------------------------- validation


def _require(ok: bool, field: str, value: Any, valid: str) -> None:
  if not ok:
    raise UserError(f"config.{field}={value!r} is invalid: {valid}.")


def _number(x) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate(config: ml_collections.ConfigDict, check_devices: bool = True) -> None:
  """Checks every field a user may set; raises `UserError` naming the field and what is valid.
  `check_devices`: the batch sizes must split over this machine's devices (training only)."""
  t, a, m, e = config.train, config.aps, config.model, config.eval
  native_conv.check_config(t)
  _require(isinstance(t.num_epochs, int) and t.num_epochs >= 1, "train.num_epochs",
           t.num_epochs, "an integer >= 1")
  _require(isinstance(t.max_steps, int) and t.max_steps >= 0, "train.max_steps", t.max_steps,
           "0 (= num_epochs) or a positive integer")
  _require(_number(t.learning_rate) and t.learning_rate > 0, "train.learning_rate",
           t.learning_rate, "a finite number > 0")
  _require(_number(t.momentum) and 0 <= t.momentum < 1, "train.momentum", t.momentum,
           "a number in [0, 1)")
  _require(_number(t.weight_decay) and t.weight_decay >= 0, "train.weight_decay",
           t.weight_decay, "a number >= 0")
  _require(_number(t.warmup_epochs) and 0 <= t.warmup_epochs <= t.num_epochs,
           "train.warmup_epochs", t.warmup_epochs, f"a number in [0, num_epochs={t.num_epochs}]")
  _require(_number(t.decay_factor) and 0 < t.decay_factor <= 1, "train.decay_factor",
           t.decay_factor, "a number in (0, 1]")
  _require(t.schedule in SCHEDULES, "train.schedule", t.schedule, ", ".join(SCHEDULES))
  for field in ("log_every_steps", "checkpoint_every_steps", "keep_checkpoints", "batch_size"):
    _require(isinstance(t[field], int) and t[field] >= 1, f"train.{field}", t[field],
             "an integer >= 1")
  _require(_number(t.decay_epochs) and t.decay_epochs > 0, "train.decay_epochs",
           t.decay_epochs, "a number > 0")
  steps_per_call = train_option(config, "steps_per_call")
  _require(isinstance(steps_per_call, int) and not isinstance(steps_per_call, bool)
           and steps_per_call >= 0, "train.steps_per_call", steps_per_call,
           "0 (auto: 1 on CPU, min(log_every_steps, 100) on GPU/TPU) or an integer >= 1")
  for field in ("device_data", "test_time_flip", "aux_bn"):
    _require(isinstance(train_option(config, field), bool), f"train.{field}",
             train_option(config, field), "True or False")
  keep_every = train_option(config, "keep_every_epochs")
  _require(_number(keep_every) and keep_every >= 0, "train.keep_every_epochs", keep_every,
           "a number >= 0 (0 = keep only the newest checkpoints)")
  smoothing = train_option(config, "label_smoothing")
  _require(_number(smoothing) and 0 <= smoothing < 1, "train.label_smoothing", smoothing,
           "a number in [0, 1) (0 = off)")
  ema = train_option(config, "ema_decay")
  _require(_number(ema) and 0 <= ema < 1, "train.ema_decay", ema,
           "a number in [0, 1) (0 = off; e.g. 0.999)")
  _require(m.dtype in ("float32", "bfloat16"), "model.dtype", m.dtype,
           "float32 or bfloat16 (the compute dtype; weights stay float32)")
  _require(isinstance(e.batch_size, int) and e.batch_size >= 1, "eval.batch_size",
           e.batch_size, "an integer >= 1")
  _require(isinstance(config.data.train_examples, int) and config.data.train_examples >= 0,
           "data.train_examples", config.data.train_examples, "0 (= all) or a positive integer")
  _require(isinstance(config.data.get("shuffle_labels", False), bool), "data.shuffle_labels",
           config.data.get("shuffle_labels"), "True or False")
  _require(isinstance(m.get("batch_norm", True), bool), "model.batch_norm", m.get("batch_norm"),
           "True or False")
  _require(m.get("batch_norm", True) or m.name in models.BATCH_NORM_OPTIONAL, "model.batch_norm",
           False, f"True for model.name={m.name!r} (only "
           f"{' and '.join(models.BATCH_NORM_OPTIONAL)} can be built without BatchNorm; vgg16 is "
           "VGG without BN)")
  if config.data.dataset == "synthetic":
    for field in ("synthetic_size", "synthetic_channels", "synthetic_examples"):
      _require(isinstance(config.data[field], int) and config.data[field] >= 1,
               f"data.{field}", config.data[field], "an integer >= 1")
  # APS.
  try:
    parsed = frequency.parse_aps_configuration(a.configuration)
  except ValueError as err:
    raise UserError(f"config.aps.configuration: {err}") from None
  _require(_number(a.aux_weight) and a.aux_weight >= 0, "aps.aux_weight", a.aux_weight,
           "a number >= 0")
  _require(a.aux_average in aps_lib.AUX_AVERAGES, "aps.aux_average", a.aux_average,
           " or ".join(aps_lib.AUX_AVERAGES))
  theta = tuple(a.theta_init) if isinstance(a.theta_init, (tuple, list)) else ()
  _require(len(theta) == 3 and all(_number(x) for x in theta), "aps.theta_init", a.theta_init,
           "3 finite numbers, one per mask (L, M, H)")
  if parsed.learnable and m.attention == "none":
    raise UserError("config.aps.configuration='learnable' needs an attention module to learn "
                    "through, but config.model.attention='none'; set config.model.attention to "
                    "basic or extended (or use the configuration LMH=abc without attention).")
  # Model.
  _require(isinstance(m.attention_hidden, int) and m.attention_hidden >= 1,
           "model.attention_hidden", m.attention_hidden, "an integer >= 1 (paper: 512)")
  if m.name == "small_resnet":
    _require(len(m.small_stage_sizes) == len(m.small_widths) and len(m.small_widths) >= 1,
             "model.small_stage_sizes", tuple(m.small_stage_sizes),
             f"one block count per stage width (model.small_widths has {len(m.small_widths)})")
    _require(all(isinstance(w, int) and w >= 1 for w in m.small_widths), "model.small_widths",
             tuple(m.small_widths), "positive integers")
    sizes = tuple(m.small_stage_sizes)
    _require(all(isinstance(s, int) for s in sizes) and sizes[0] >= 0
             and all(s >= 1 for s in sizes[1:]), "model.small_stage_sizes", sizes,
             "integers >= 1 (the first may be 0: the stem then feeds the first stride-2 stage)")
  n_dev = jax.device_count() if check_devices else 1
  for field, value in (("train.batch_size", t.batch_size), ("eval.batch_size", e.batch_size)):
    _require(value % n_dev == 0, field, value,
             f"must be divisible by the number of devices ({n_dev})")


def resolve_config(config: ml_collections.ConfigDict,
                   for_training: bool = True) -> ml_collections.ConfigDict:
  """A validated copy of `config` with the dataset-derived fields (input statistics) filled and
  `config.evals` filled for a config written before it. `for_training=False` (loading a run for
  evaluation or analysis) skips what only training needs: the batch sizes' divisibility by this
  machine's device count (prediction pads its batches) and the evaluations' own checks (a moved
  baseline run)."""
  config = ml_collections.ConfigDict(config.to_dict())
  evaluators.normalize_config(config)
  try:
    info = data_lib.dataset_info(config.data)
  except ValueError as err:
    raise UserError(str(err)) from None
  if not config.model.input_mean:
    config.model.input_mean = tuple(info["mean"])
  if not config.model.input_std:
    config.model.input_std = tuple(info["std"])
  validate(config, check_devices=for_training)
  try:
    method = build_method(config)  # Bad augmentation fields fail here, early.
    build_model(config, method, info["num_classes"])  # So do bad model fields.
  except ValueError as err:
    raise UserError(str(err)) from None
  if for_training:
    evaluators.check(config)  # Unknown evaluations, bad settings, a missing baseline: now.
  else:
    evaluators.build(config)
  return config


# ----------------------------------------------------------------------------- the parts


def uses_aux_bn(config: ml_collections.ConfigDict, method: Method) -> bool:
  """Whether the model gets auxiliary BatchNorms: `config.train.aux_bn` and a method that declares
  views for them (`aux_bn_views`, AFA)."""
  return bool(train_option(config, "aux_bn")) and bool(method.aux_bn_views)


def build_model(config: ml_collections.ConfigDict, method: Method, num_classes: int):
  if uses_aux_bn(config, method) and not config.model.get("batch_norm", True):
    raise UserError("config.train.aux_bn=True (auxiliary BatchNorms for the method's views) needs "
                    "BatchNorm, but config.model.batch_norm=False: set config.train.aux_bn=False "
                    "or keep BatchNorm.")
  return models.build_model(config.model, num_classes, aux_bn=uses_aux_bn(config, method),
                            conv_op=native_conv.select(config.train.get("conv_backend", "auto")))


def build_method(config: ml_collections.ConfigDict) -> Method:
  """The augmentation method of the config (the paper's: `config.augment` + `config.aps`)."""
  name = config.get("method", "paper")
  if name != "paper":
    if name not in registry.METHODS:
      raise UserError(f"config.method={name!r}; valid: paper, {', '.join(registry.METHODS)}.")
    if config.model.attention != "none":
      raise UserError(f"config.method={name!r} is a baseline without APS; set "
                      "config.model.attention='none' (the attention is the paper's method).")
    try:
      return registry.METHODS[name].from_config(config.get("method_args", {}))
    except (ValueError, TypeError) as err:
      raise UserError(f"config.method_args ({name}): {err}") from None
  method = aps_lib.PaperMethod(
      augment=augment.AugmentParams.from_config(config.augment),
      aps=aps_lib.APSParams.from_config(config.aps, config.model.attention))
  adversarial = config.get("adversarial", "")
  if not adversarial:
    return method
  # The paper's method under adversarial training: its view attacked (augment/adversarial.py).
  from freqrobust.augment import adversarial as adversarial_lib
  if adversarial not in ADVERSARIAL_TRAINING:
    raise UserError(f"config.adversarial={adversarial!r}; valid: '' (none), "
                    f"{', '.join(ADVERSARIAL_TRAINING)}.")
  try:
    attack = registry.METHODS[adversarial].from_config(config.get("adversarial_args", {}))
  except (ValueError, TypeError) as err:
    raise UserError(f"config.adversarial_args ({adversarial}): {err}") from None
  return adversarial_lib.AdversarialPaper(paper=method, attack=attack)


# The adversarial-training methods the paper's method composes with (config.adversarial).
ADVERSARIAL_TRAINING = ("pgd_at", "fgsm_rs")


# Learning-rate schedules (config.train.schedule), each after an optional linear warm-up from 0
# over config.train.warmup_epochs:
# - "step": x decay_factor every decay_epochs, counted from step 0 (the warm-up does not move them);
# - "cosine": a cosine from the peak over num_epochs that starts when the warm-up ends, so it
#   stops short of 0: at warm-up w of T steps the last step has lr * (1 + cos(pi (T - w) / T)) / 2
#   (0.27% of the peak for the CPU protocol's 0.2 of 6 epochs). Every CPU run in docs/RESULTS.md
#   used it; kept so that they stay reproducible;
# - "warmup_cosine": the cosine over the steps after the warm-up, down to 0 at the last step
#   (optax.warmup_cosine_decay_schedule).
SCHEDULES = ("step", "cosine", "warmup_cosine")


def make_schedule(train_cfg, steps_per_epoch: int) -> Callable:
  """The learning rate per step (see SCHEDULES)."""
  lr = train_cfg.learning_rate
  total = max(1, train_cfg.num_epochs * steps_per_epoch)
  warmup = int(train_cfg.warmup_epochs * steps_per_epoch)
  if train_cfg.schedule == "warmup_cosine":
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(total, warmup + 1))
  if train_cfg.schedule == "step":
    boundaries = {int(k * train_cfg.decay_epochs * steps_per_epoch): train_cfg.decay_factor
                  for k in range(1, int(math.ceil(train_cfg.num_epochs / train_cfg.decay_epochs)))}
    main = optax.piecewise_constant_schedule(lr, boundaries)
    if not warmup:
      return main
    ramp = optax.linear_schedule(0.0, lr, warmup)
    return lambda count: jnp.where(count < warmup, ramp(count), main(count))
  schedule = optax.cosine_decay_schedule(lr, total)
  if warmup:
    schedule = optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), schedule], [warmup])
  return schedule


def make_optimizer(train_cfg, steps_per_epoch: int) -> Tuple[optax.GradientTransformation,
                                                              Callable]:
  """SGD with momentum and weight decay (model parameters only), with `make_schedule`."""
  schedule = make_schedule(train_cfg, steps_per_epoch)
  model_only = lambda params: {k: jax.tree.map(lambda _: k == "model", v)
                               for k, v in params.items()}
  parts = [optax.add_decayed_weights(train_cfg.weight_decay, mask=model_only),
           optax.sgd(schedule, momentum=train_cfg.momentum, nesterov=train_cfg.nesterov)]
  ema_decay = float(train_cfg.get("ema_decay", TRAIN_OPTION_DEFAULTS["ema_decay"]))
  if ema_decay:
    parts.append(track_ema(ema_decay))
  return optax.chain(*parts), schedule


class EmaState(NamedTuple):
  """The exponential moving averages of the parameters and of the BatchNorm statistics
  (zero-initialised; `ema_params` / `ema_batch_stats` debias them), the number of updates they
  have seen, and the decay."""
  count: jax.Array
  ema: Any
  batch_stats: Any = ()  # Filled with zeros of the statistics' shapes by `init_ema_batch_stats`.
  decay: Any = ()  # For `track_ema_batch_stats`, which the train step calls without the config.


def track_ema(decay: float) -> optax.GradientTransformation:
  """Last link of the optimizer chain: leaves the updates alone and keeps, in its state, the
  EMA of the parameters after each update (params + updates). Living in opt_state, it is saved
  and restored with the checkpoints; the checkpoints' params stay the live weights. The EMA of
  the BatchNorm statistics beside it is kept by `track_ema_batch_stats`, which the train step
  calls after each update: EMA weights evaluated with the live weights' statistics lost 3.2
  points of clean accuracy on the quickstart (decay 0.998, docs/BENCHMARKS.md)."""
  def init_fn(params):
    return EmaState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params), (),
                    jnp.asarray(decay, jnp.float32))

  def update_fn(updates, state, params):
    new_params = optax.apply_updates(params, updates)
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema, new_params)
    return updates, state._replace(count=optax.safe_int32_increment(state.count), ema=ema)

  return optax.GradientTransformation(init_fn, update_fn)


def _is_ema(node: Any) -> bool:
  return isinstance(node, EmaState)


def init_ema_batch_stats(opt_state: Any, batch_stats: Any) -> Any:
  """`opt_state` with zeros of the BatchNorm statistics' shapes in its EmaState (a no-op without
  one), so the state's structure is fixed from the start (scan, donation, checkpoints)."""
  return jax.tree.map(
      lambda s: s._replace(batch_stats=jax.tree.map(jnp.zeros_like, batch_stats))
      if _is_ema(s) else s, opt_state, is_leaf=_is_ema)


def track_ema_batch_stats(opt_state: Any, batch_stats: Any) -> Any:
  """After an optimizer update: the EMA of the BatchNorm statistics takes in `batch_stats` (the
  statistics after that step), with the EMA's decay; a no-op without an EmaState."""
  def update(s):
    if not _is_ema(s):
      return s
    d = s.decay
    return s._replace(batch_stats=jax.tree.map(lambda e, b: d * e + (1.0 - d) * b,
                                               s.batch_stats, batch_stats))
  return jax.tree.map(update, opt_state, is_leaf=_is_ema)


def evaluation_variables(config: ml_collections.ConfigDict, state: Any) -> Dict[str, Any]:
  """The model variables evaluations use (training's own, `freqrobust.evaluate` and `analyze`
  alike): the EMA of the weights and of the BatchNorm statistics when config.train.ema_decay > 0,
  else the live weights and statistics."""
  params, batch_stats = state.params, state.batch_stats
  decay = train_option(config, "ema_decay")
  if decay:
    params = ema_params(state.opt_state, decay, params)
    batch_stats = ema_batch_stats(state.opt_state, decay, batch_stats)
  return {"params": params["model"], "batch_stats": batch_stats}


def predict_apply(model, test_time_flip: bool = False) -> Callable:
  """`apply(variables, images) -> logits` in inference mode; with `test_time_flip` the mean of
  the logits of the images and of their horizontal mirror images."""
  def apply(variables, images):
    logits = model.apply(variables, images, train=False)[0].astype(jnp.float32)
    if test_time_flip:
      mirrored = model.apply(variables, images[:, :, ::-1], train=False)[0]
      logits = 0.5 * (logits + mirrored.astype(jnp.float32))
    return logits
  return apply


def _ema_state(opt_state: Any) -> EmaState:
  found = [s for s in jax.tree.leaves(opt_state, is_leaf=_is_ema) if _is_ema(s)]
  if not found:
    raise ValueError("The optimizer state has no EMA of the parameters: the run was built "
                     "with config.train.ema_decay = 0.")
  return found[0]


def _debiased(state: EmaState, tree: Any, decay: float, live: Any) -> Any:
  """tree / (1 - decay^count), or `live` before the first update; traceable (no host read of the
  count), so evaluations may call it inside jit."""
  if not isinstance(state.count, jax.core.Tracer):  # Concrete: the scale in float64, as always.
    count = int(state.count)
    if count == 0:
      return live
    scale = 1.0 / (1.0 - decay ** count)
    return jax.tree.map(lambda e: e * scale, tree)
  count = jnp.asarray(state.count)
  started = count > 0
  scale = 1.0 / jnp.where(started, 1.0 - jnp.asarray(decay, jnp.float32) ** count, 1.0)
  return jax.tree.map(lambda e, v: jnp.where(started, e * scale, v), tree, live)


def ema_params(opt_state: Any, decay: float, params: Any) -> Any:
  """The debiased EMA of the parameters, EMA / (1 - decay^count), from a state made by
  `make_optimizer` with ema_decay = `decay`; `params` (the live ones) before the first update."""
  state = _ema_state(opt_state)
  return _debiased(state, state.ema, decay, params)


def ema_batch_stats(opt_state: Any, decay: float, batch_stats: Any) -> Any:
  """The debiased EMA of the BatchNorm statistics, as `ema_params`; `batch_stats` (the live
  ones) before the first update or when the model has none."""
  state = _ema_state(opt_state)
  if not jax.tree.leaves(state.batch_stats):
    return batch_stats
  return _debiased(state, state.batch_stats, decay, batch_stats)


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Everything a run is built from, named (what `build` returns)."""
  config: ml_collections.ConfigDict
  model: Any
  method: Method
  tx: optax.GradientTransformation
  schedule: Callable
  steps_per_epoch: int
  image_shape: Tuple[int, ...]
  num_classes: int

  def create_state(self, key: jax.Array) -> TrainState:
    variables = self.model.init(key, jnp.zeros((1,) + tuple(self.image_shape), jnp.float32),
                                train=False)
    params = {"model": variables["params"], **self.method.init_params()}
    # Float32 master weights and statistics whatever the compute dtype (Flax's param_dtype is
    # float32 already; this makes it a property of the state, not of each module).
    params, batch_stats = jax.tree.map(_master, (params, variables.get("batch_stats", {})))
    state = TrainState.create(apply_fn=self.model.apply, params=params, tx=self.tx,
                              batch_stats=batch_stats)
    return state.replace(opt_state=init_ema_batch_stats(state.opt_state, batch_stats))

  def init_state(self, key: jax.Array, sharder: Sharder) -> TrainState:
    """The initial state, created directly replicated over the mesh."""
    return jax.jit(self.create_state, out_shardings=sharder.replicated)(key)

  def abstract_state(self) -> TrainState:
    """Shapes and dtypes of the state (no computation)."""
    return jax.eval_shape(self.create_state, jax.random.key(0))


def _master(x: jax.Array) -> jax.Array:
  return x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) else x


def build(config: ml_collections.ConfigDict, num_train: int) -> Experiment:
  """The experiment of a resolved config whose training set has `num_train` images."""
  info = data_lib.dataset_info(config.data)
  steps_per_epoch = max(1, num_train // config.train.batch_size)
  tx, schedule = make_optimizer(config.train, steps_per_epoch)
  method = build_method(config)
  return Experiment(config=config, model=build_model(config, method, info["num_classes"]),
                    method=method, tx=tx, schedule=schedule,
                    steps_per_epoch=steps_per_epoch, image_shape=tuple(info["shape"]),
                    num_classes=info["num_classes"])


def method_choices(config: ml_collections.ConfigDict, method: Optional[Method] = None) -> dict:
  """The method choices the paper leaves open, as this run made them (recorded in results.json;
  docs/METHOD.md §8 explains each). `method`: the run's built method (built from `config` if
  None)."""
  method = build_method(config) if method is None else method
  return {"method": config.get("method", "paper"),
          "method_args": dict(config.get("method_args", {})),
          **({"adversarial": config.adversarial,
              "adversarial_args": dict(config.get("adversarial_args", {}))}
             if config.get("adversarial", "") else {}),
          "aux_bn_views": list(method.aux_bn_views) if uses_aux_bn(config, method) else [],
          "aux_average": config.aps.aux_average if config.model.attention != "none" else None,
          "nfd_noise": "hermitian" if config.augment.nfd else None,
          "keep_range": list(config.augment.keep_range),
          "method_revision": len(method.revisions),
          **({"method_fields": _resolved_fields(method)}
             if type(method) in registry.METHODS.values() else {})}


def _resolved_fields(method: Method) -> dict:
  """A baseline's fields as it trained (defaults included), JSON-ready: what `base.stale_notes`
  reads instead of guessing from the config's method_args."""
  out = {}
  for f in dataclasses.fields(method):
    value = getattr(method, f.name)
    out[f.name] = list(value) if isinstance(value, tuple) else value
  return out
