"""The training loop's in-loop actions, declared in one list, and the loop that runs them.

Between two calls of the K-step train function the loop runs the actions due at the step
reached: logging the averaged metrics, the in-loop evaluations (one per `config.evals` entry with
`every_epochs`), the checkpoints and the kept checkpoints. Each is an `Action` with its interval,
listed in `actions(...)` in the order they run; the steps per call K are derived from that list
(`steps_per_call`: K divides every interval, the last step and the start step), so an action
added to the list fires at each of its steps whatever the other intervals, and a resumed run's
calls are those of an uninterrupted one. `run(loop, actions)` takes the loop's whole state as
one `Loop`.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import signal
from typing import Any, Callable, Dict, List, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust import checkpoint, distributed, progress as progress_lib
from freqrobust.experiment import train_option


@dataclasses.dataclass
class Loop:
  """What the loop carries from call to call. `runner(state, step, key)` runs `runner.k` steps
  from `step`; `evaluate(state, step, evaluators)` returns the in-loop evaluations' flat
  `<name>/<metric>` scalars; `log` is the run's `workdir.MetricsWriter`; `manager` its
  checkpoint manager; `step_callback(step)` is called for every step once its call returned."""
  state: Any
  step: int
  total_steps: int
  steps_per_epoch: int
  runner: Callable
  key: jax.Array
  log: Any
  manager: Any
  evaluate: Callable[[Any, int, list], Dict[str, float]]
  step_callback: Optional[Callable[[int], None]] = None
  progress: Any = None
  pending: list = dataclasses.field(default_factory=list)  # Device metrics not yet logged.
  eval_line: dict = dataclasses.field(default_factory=dict)  # Evaluations of this step.
  last_good: int = 0  # The last checkpoint saved with finite weights.
  saved: int = -1  # The step of the last checkpoint saved by this loop.


@dataclasses.dataclass(frozen=True)
class Action:
  """One in-loop action: `run(loop, step)` at every step divisible by `every` (0: never), at the
  last step too when `at_last`, never at the last step when `skip_last` (done after the loop),
  and at the step where a SIGTERM is acted on when `on_preemption`."""
  name: str
  every: int
  run: Callable[[Loop, int], None]
  at_last: bool = False
  skip_last: bool = False
  on_preemption: bool = False

  def due(self, step: int, last: int, preempted: bool) -> bool:
    if self.skip_last and step == last:
      return False
    return (bool(self.every) and step % self.every == 0) or (self.at_last and step == last) \
        or (self.on_preemption and preempted)


def kept_every_steps(config, steps_per_epoch: int) -> int:
  """Steps between the checkpoints kept beside the newest ones (config.train.keep_every_epochs;
  0: none)."""
  epochs = train_option(config, "keep_every_epochs")
  return int(round(epochs * steps_per_epoch)) if epochs else 0


def actions(config, steps_per_epoch: int, in_loop_evals: Sequence) -> List[Action]:
  """The run's in-loop actions, in the order they run at a step: the metrics line, the in-loop
  evaluations (`evaluators.in_loop`: (evaluator, every N steps); the final model's are made after
  the loop), the checkpoint and the kept checkpoint (both save the step once)."""
  evals = [Action(f"evaluate {e.name}", every, functools.partial(_evaluate, e), skip_last=True)
           for e, every in in_loop_evals]
  return [Action("log", config.train.log_every_steps, _log, at_last=True, on_preemption=True),
          *evals,
          Action("checkpoint", config.train.checkpoint_every_steps, _save, at_last=True,
                 on_preemption=True),
          Action("kept checkpoint", kept_every_steps(config, steps_per_epoch), _save)]


def effective_steps_per_call(requested: int, boundaries) -> int:
  """The largest K <= `requested` dividing `requested` and every boundary (zeros are ignored):
  every boundary then falls at the end of a call."""
  k = max(1, int(requested))
  for b in boundaries:
    k = math.gcd(k, int(b))
  return k


def steps_per_call(requested: int, listed: Sequence[Action], total_steps: int,
                   start_step: int) -> int:
  """K for `run`: divides `requested`, every action's interval, the last step and the start
  step (a resumed run's calls are those of an uninterrupted one)."""
  return effective_steps_per_call(requested, [a.every for a in listed]
                                  + [total_steps, start_step])


@jax.jit
def all_finite(tree) -> jax.Array:
  return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def mean_metrics(pending: List[Dict[str, Any]]) -> Dict[str, float]:
  """Means over the steps of device metrics (one host transfer): each entry is one call's
  metrics, scalars (one step) or with a leading axis (the steps of a scanned call); `nonfinite`
  is summed instead."""
  stacked = jax.device_get(pending)
  out = {}
  for k in stacked[0]:
    values = np.concatenate([np.reshape(np.asarray(m[k]), -1) for m in stacked])
    out[k] = float(np.sum(values) if k == "nonfinite" else np.mean(values, dtype=np.float64))
  return out


def _log(loop: Loop, step: int) -> None:
  """The training line: the metrics averaged since the last one (stops on a NaN/Inf loss)."""
  if not loop.pending:
    return
  summary, loop.pending = mean_metrics(loop.pending), []
  if summary.pop("nonfinite") > 0:
    raise_nonfinite(step, loop.last_good, loop.manager)
  loop.log.write(step, summary)
  if loop.progress is not None:
    loop.progress.update(step, summary)


def _write_evals(loop: Loop, step: int) -> None:
  if loop.eval_line:
    loop.log.write(step, loop.eval_line, kind="eval")
    loop.eval_line = {}


def _evaluate(evaluator, loop: Loop, step: int) -> None:
  """One in-loop evaluation: its scalars join the step's one eval line."""
  loop.eval_line.update(loop.evaluate(loop.state, step, [evaluator]))


def _save(loop: Loop, step: int) -> None:
  """A checkpoint of `step` (once per step), after the step's lines; never of NaN/Inf weights."""
  _log(loop, step)
  _write_evals(loop, step)
  if loop.saved == step:
    return
  if not bool(all_finite(loop.state.params)):  # Never overwrite good weights with bad ones.
    raise_nonfinite(step, loop.last_good, loop.manager)
  checkpoint.save(loop.manager, step, loop.state)
  loop.last_good = loop.saved = step


def raise_nonfinite(step: int, last_good: int, manager) -> None:
  manager.wait_until_finished()
  kept = (f"The last good checkpoint (step {last_good}) is kept in {manager.directory}; rerun "
          "to resume from it" if last_good else "No checkpoint had been saved yet")
  raise FloatingPointError(
      f"The loss or the parameters became NaN/Inf by step {step}; training stopped. {kept}. "
      "Lower config.train.learning_rate or config.aps.aux_weight.")


class Preemption:
  """Turns SIGTERM into a flag the loop checks, so the run saves and exits cleanly.

  `poll()`, called once per loop iteration by every process, sets `requested` to whether any
  process has received SIGTERM (`distributed.any_process`, a collective): all processes then save
  the same step and leave together, whichever of them the signal reached."""

  def __init__(self):
    self.requested, self._received, self._previous = False, False, None

  def poll(self) -> bool:
    self.requested = self.requested or distributed.any_process(self._received)
    return self.requested

  def __enter__(self):
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # Not the main thread: no handler, the flag stays False.
      self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self._received = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def run(loop: Loop, listed: Sequence[Action]) -> str:
  """Trains from `loop.step` to `loop.total_steps`, `loop.runner.k` steps per call, running the
  actions due after each call; returns "finished", or "preempted" (SIGTERM: saved, then left).
  Nothing here waits for the devices between log boundaries."""
  if loop.progress is None:
    loop.progress = progress_lib.TrainProgress(loop.step, loop.total_steps,
                                               loop.steps_per_epoch,
                                               enabled=jax.process_index() == 0)
  loop.last_good = loop.step
  with Preemption() as preemption:
    while loop.step < loop.total_steps:
      loop.state, metrics = loop.runner(loop.state, loop.step, loop.key)
      loop.pending.append(metrics)
      for done in range(loop.step + 1, loop.step + loop.runner.k + 1):
        loop.step = done
        if loop.step_callback is not None:
          loop.step_callback(done)
      preempted = preemption.poll()
      for action in listed:
        if action.due(loop.step, loop.total_steps, preempted):
          action.run(loop, loop.step)
      _write_evals(loop, loop.step)
      if preempted:
        if jax.process_index() == 0:
          progress_lib.say(f"SIGTERM: saved the checkpoint of step {loop.step}; rerun the same "
                           "command to resume.")
        return "preempted"
  return "finished"
