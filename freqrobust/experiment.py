"""Building an experiment from a config: validation, model, augmentation method, optimizer, state.

`resolve_config(config)` checks every field before any work (naming the field and its valid
range) and fills the dataset-derived ones; `build(config, num_train)` returns an `Experiment`, the
named set-up that training, evaluation and analysis share; `Experiment.init_state(key, sharder)`
creates the `TrainState` directly replicated over the mesh.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from freqrobust import checks, data as data_lib, evaluators, models, provenance, schedules
from freqrobust.augment import adversarial as adversarial_lib
from freqrobust.augment import base as method_base
from freqrobust.augment import registry
from freqrobust.native import conv as native_conv
# The schedules, the optimizer and the EMA live in their own modules; their names stay here too.
from freqrobust.ema import (EmaState, ema_batch_stats, ema_params, init_ema_batch_stats,  # noqa
                            track_ema, track_ema_batch_stats)
from freqrobust.schedules import SCHEDULES, make_optimizer, make_schedule  # noqa: F401
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


def _check_loop(config: ml_collections.ConfigDict) -> None:
  """The fields of config.train the run loop reads (intervals, batches, fast path, losses)."""
  t, req = config.train, checks.require
  for field in ("log_every_steps", "checkpoint_every_steps", "keep_checkpoints", "batch_size"):
    req(checks.integer(t[field], 1), f"train.{field}", t[field], "an integer >= 1")
  steps_per_call = train_option(config, "steps_per_call")
  req(checks.integer(steps_per_call, 0), "train.steps_per_call", steps_per_call,
      "0 (auto: 1 on CPU, min(log_every_steps, 100) on GPU/TPU) or an integer >= 1")
  for field in ("device_data", "test_time_flip", "aux_bn"):
    req(isinstance(train_option(config, field), bool), f"train.{field}",
        train_option(config, field), "True or False")
  keep_every = train_option(config, "keep_every_epochs")
  req(checks.number(keep_every) and keep_every >= 0, "train.keep_every_epochs", keep_every,
      "a number >= 0 (0 = keep only the newest checkpoints)")
  smoothing = train_option(config, "label_smoothing")
  req(checks.number(smoothing) and 0 <= smoothing < 1, "train.label_smoothing", smoothing,
      "a number in [0, 1) (0 = off)")
  req(checks.integer(config.eval.batch_size, 1), "eval.batch_size", config.eval.batch_size,
      "an integer >= 1")


def _check_data(data_cfg: ml_collections.ConfigDict) -> None:
  req = checks.require
  req(checks.integer(data_cfg.train_examples, 0), "data.train_examples",
      data_cfg.train_examples, "0 (= all) or a positive integer")
  req(isinstance(data_cfg.get("shuffle_labels", False), bool), "data.shuffle_labels",
      data_cfg.get("shuffle_labels"), "True or False")
  if data_cfg.dataset == "synthetic":
    for field in ("synthetic_size", "synthetic_channels", "synthetic_examples"):
      req(checks.integer(data_cfg[field], 1), f"data.{field}", data_cfg[field], "an integer >= 1")


def validate(config: ml_collections.ConfigDict, check_devices: bool = True) -> None:
  """Checks every field a user may set, each section by the component that reads it (the
  schedule and optimizer, the loop, the data, the model; the method in `build_method`, the
  evaluations in `evaluators.check`); raises `UserError` naming the field and what is valid.
  `check_devices`: the batch sizes must split over this machine's devices (training only)."""
  schedules.check_config(config.train)
  native_conv.check_config(config.train)
  _check_loop(config)
  _check_data(config.data)
  models.check_config(config.model)
  n_dev = jax.device_count() if check_devices else 1
  for field in ("train.batch_size", "eval.batch_size"):
    value = config[field.split(".")[0]].batch_size
    checks.require(value % n_dev == 0, field, value,
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
  """The augmentation method of the config: `config.method`'s entry of `registry.METHODS`, built
  from the run's config (the paper's from `config.augment` + `config.aps`, a baseline's from
  `config.method_args`), under adversarial training when `config.adversarial` names one
  (`adversarial.AdversarialComposition`, with `config.adversarial_args`)."""
  name = config.get("method", "paper")
  if name not in registry.METHODS:
    raise UserError(f"config.method={name!r}; valid: {', '.join(registry.METHODS)}.")
  cls = registry.METHODS[name]
  if config.model.attention != "none" and not cls.uses_attention:
    raise UserError(f"config.method={name!r} is a baseline without APS; set "
                    "config.model.attention='none' (the attention is the paper's method).")
  method = cls.from_run_config(config)
  adversarial = config.get("adversarial", "")
  if not adversarial:
    return method
  if adversarial not in registry.ADVERSARIAL_TRAINING:
    raise UserError(f"config.adversarial={adversarial!r}; valid: '' (none), "
                    f"{', '.join(registry.ADVERSARIAL_TRAINING)}.")
  if name in registry.ADVERSARIAL_TRAINING:
    raise UserError(f"config.adversarial={adversarial!r} adds adversarial training to the method, "
                    f"but config.method={name!r} is adversarial training already: set "
                    "config.adversarial='' (and its settings in config.method_args).")
  try:
    attack = registry.ADVERSARIAL_TRAINING[adversarial].from_config(
        config.get("adversarial_args", {}))
  except (ValueError, TypeError) as err:
    raise UserError(f"config.adversarial_args ({adversarial}): {err}") from None
  try:
    return adversarial_lib.AdversarialComposition(method=method, attack=attack)
  except ValueError as err:
    raise UserError(f"config.adversarial={adversarial!r} cannot compose with config.method="
                    f"{name!r}: {err}") from None


# The adversarial-training methods every other method composes with (config.adversarial).
ADVERSARIAL_TRAINING = tuple(registry.ADVERSARIAL_TRAINING)


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
  """The method choices the paper leaves open, as this run made them (`provenance`; recorded in
  results.json). `method`: the run's built method (built from `config` if None)."""
  method = build_method(config) if method is None else method
  return provenance.method_choices(config, method, uses_aux_bn(config, method))
