"""The in-loop actions (freqrobust/loop.py): declared in one list with their intervals, the steps
per call derived from that list, so an action fires at each of its steps whatever the others."""
import numpy as np

from configs import default
from freqrobust import loop as loop_lib
from freqrobust import progress as progress_lib


class FakeRunner:
  """`k` steps per call; metrics as the train step's (per step, with `nonfinite`)."""

  def __init__(self, k):
    self.k, self.calls = k, []

  def __call__(self, state, step, key):
    self.calls.append(step)
    return state + self.k, {"loss": np.full(self.k, 1.0), "accuracy": np.full(self.k, 0.5),
                            "nonfinite": np.zeros(self.k, int)}


class FakeLog:
  def __init__(self):
    self.lines = []

  def write(self, step, values, kind="train"):  # workdir.MetricsWriter's
    self.lines.append((kind, step, dict(values)))


def run_actions(listed, total_steps, requested):
  k = loop_lib.steps_per_call(requested, listed, total_steps, 0)
  runner, log = FakeRunner(k), FakeLog()
  loop = loop_lib.Loop(state=0, step=0, total_steps=total_steps, steps_per_epoch=6,
                       runner=runner, key=None, log=log, manager=None,
                       evaluate=lambda state, step, due: {f"{e.name}/x": float(step) for e in due},
                       progress=progress_lib.TrainProgress(0, total_steps, 6, enabled=False))
  assert loop_lib.run(loop, listed) == "finished"
  return k, runner, log, loop


def test_an_action_whose_interval_divides_no_other_still_fires_at_its_steps():
  fired = []
  listed = [loop_lib.Action("log", 4, loop_lib._log, at_last=True),
            loop_lib.Action("probe", 3, lambda loop, step: fired.append((step, loop.state)))]
  k, runner, log, loop = run_actions(listed, total_steps=12, requested=4)
  assert k == 1  # gcd(4, 3): the probe's interval is part of the derivation.
  assert [step for step, _ in fired] == [3, 6, 9, 12]
  assert all(state == step for step, state in fired)  # It saw the state of its step.
  assert [(kind, step) for kind, step, _ in log.lines] == [("train", 4), ("train", 8),
                                                         ("train", 12)]
  assert loop.step == 12 and runner.calls == list(range(12))


def test_the_runs_actions_and_the_steps_per_call_they_allow():
  config = default.get_config()
  config.train.log_every_steps, config.train.checkpoint_every_steps = 8, 16
  config.train.keep_every_epochs = 2.0  # 12 steps at 6 steps per epoch.

  class Evaluator:
    name = "clean"

  listed = loop_lib.actions(config, 6, [(Evaluator(), 6)])
  assert [(a.name, a.every) for a in listed] == [
      ("log", 8), ("evaluate clean", 6), ("checkpoint", 16), ("kept checkpoint", 12)]
  assert loop_lib.steps_per_call(8, listed, 96, 0) == 2  # gcd(8, 6, 16, 12, 96)
  assert loop_lib.steps_per_call(8, listed[:1] + listed[2:3], 96, 0) == 8
  assert loop_lib.steps_per_call(8, listed[:1], 96, 4) == 4  # Resumed at step 4.
  evaluate = listed[1]
  assert evaluate.due(6, 96, False) and not evaluate.due(96, 96, False)  # The end: _finish's.
  assert listed[2].due(5, 5, False) and listed[2].due(3, 96, True)  # Last step, SIGTERM.


def test_evaluations_of_one_step_share_its_one_eval_line():
  class Evaluator:
    def __init__(self, name):
      self.name = name

  config = default.get_config()
  config.train.log_every_steps = 2
  listed = [a for a in loop_lib.actions(config, 6, [(Evaluator("a"), 2), (Evaluator("b"), 3)])
            if "checkpoint" not in a.name]
  _, _, log, _ = run_actions(listed, total_steps=7, requested=2)
  evals = [(step, sorted(values)) for kind, step, values in log.lines if kind == "eval"]
  assert evals == [(2, ["a/x"]), (3, ["b/x"]), (4, ["a/x"]), (6, ["a/x", "b/x"])]
