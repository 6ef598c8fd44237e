"""The learning-rate schedules (config.train.schedule) and the optimizer: SGD with momentum and
weight decay on the model's parameters, with the EMA of `freqrobust.ema` when
config.train.ema_decay > 0."""
from __future__ import annotations

import math
from typing import Callable, Tuple

import jax
import jax.numpy as jnp
import optax

from freqrobust import checks, ema


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
  ema_decay = float(train_cfg.get("ema_decay", 0.0))  # 0: a config.json from before it
  if ema_decay:
    parts.append(ema.track_ema(ema_decay))
  return optax.chain(*parts), schedule


def check_config(t) -> None:
  """Checks the fields of `config.train` the schedule and the optimizer read; raises `UserError`
  naming the field and what is valid."""
  req, number = checks.require, checks.number
  req(checks.integer(t.num_epochs, 1), "train.num_epochs", t.num_epochs, "an integer >= 1")
  req(checks.integer(t.max_steps, 0), "train.max_steps", t.max_steps,
      "0 (= num_epochs) or a positive integer")
  req(number(t.learning_rate) and t.learning_rate > 0, "train.learning_rate", t.learning_rate,
      "a finite number > 0")
  req(number(t.momentum) and 0 <= t.momentum < 1, "train.momentum", t.momentum,
      "a number in [0, 1)")
  req(number(t.weight_decay) and t.weight_decay >= 0, "train.weight_decay", t.weight_decay,
      "a number >= 0")
  req(number(t.warmup_epochs) and 0 <= t.warmup_epochs <= t.num_epochs, "train.warmup_epochs",
      t.warmup_epochs, f"a number in [0, num_epochs={t.num_epochs}]")
  req(number(t.decay_factor) and 0 < t.decay_factor <= 1, "train.decay_factor", t.decay_factor,
      "a number in (0, 1]")
  req(t.schedule in SCHEDULES, "train.schedule", t.schedule, ", ".join(SCHEDULES))
  req(number(t.decay_epochs) and t.decay_epochs > 0, "train.decay_epochs", t.decay_epochs,
      "a number > 0")
  ema_decay = t.get("ema_decay", 0.0)
  req(number(ema_decay) and 0 <= ema_decay < 1, "train.ema_decay", ema_decay,
      "a number in [0, 1) (0 = off; e.g. 0.999)")
