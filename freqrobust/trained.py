"""A trained run loaded for evaluation and analysis: `load_trained(workdir) -> TrainedModel`."""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Callable, Optional

import jax
import ml_collections
import numpy as np

from freqrobust import checkpoint, experiment, sharding
from freqrobust import workdir as workdir_lib


def fingerprint(tree: Any) -> str:
  """A content hash of a pytree of arrays (paths, shapes, dtypes and bytes): two models with the
  same fingerprint make the same predictions."""
  digest = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]:
    array = np.ascontiguousarray(np.asarray(leaf))
    digest.update(f"{jax.tree_util.keystr(path)}|{array.shape}|{array.dtype}|".encode())
    digest.update(array.tobytes())
  return digest.hexdigest()[:16]


# (id of a Flax module, flip) -> (the module, its frozen-gate apply), `surrogate_apply`.
_FROZEN_GATE: dict = {}


@dataclasses.dataclass
class TrainedModel:
  """A trained run: config, Flax module and variables, with batched prediction helpers."""
  config: ml_collections.ConfigDict
  model: Any
  variables: Any
  theta_b: Optional[np.ndarray]
  step: int
  predict: Callable[[np.ndarray], np.ndarray]  # float32 NHWC in [0, 1] -> logits
  test_time_flip: bool = False  # `predict` averages the logits of each image and its mirror
  # `apply(variables, images) -> logits`: the jax function `predict` batches (for gradients:
  # attacks differentiate exactly the reported function).
  apply: Optional[Callable[[Any, Any], Any]] = None

  @property
  def fingerprint(self) -> str:
    """Keys resumable evaluations: the variables, and whether predictions are flip-averaged (as
    training's own evaluation keys them)."""
    return fingerprint(self.variables) + ("+flip" if self.test_time_flip else "")

  def surrogate_apply(self, name: str) -> Callable[[Any, Any], Any]:
    """`apply(variables, images) -> logits` of a BPDA surrogate (`attacks.runner.SURROGATES`):
    "frozen_gate", the reported function (flip included) of the model rebuilt with the APS
    gate's gradient stopped, the forward pass unchanged. One object per model: the attacks of
    training's successive evaluations reuse their compilations."""
    if name != "frozen_gate":
      raise ValueError(f"surrogate {name!r}: the one known is 'frozen_gate'.")
    key = (id(self.model), self.test_time_flip)
    if key not in _FROZEN_GATE or _FROZEN_GATE[key][0] is not self.model:
      _FROZEN_GATE[key] = (self.model, experiment.predict_apply(
          self.model.clone(frozen_gate=True), self.test_time_flip))
    return _FROZEN_GATE[key][1]

  def open_ratios(self, images) -> Optional[np.ndarray]:
    """The attention's open-ratio vectors v (N, C1), or None when the model has no attention."""
    if self.config.model.attention == "none":
      return None
    fn = sharding.batched_predict(lambda v, x: self.model.apply(v, x, train=False)[1],
                                  self.variables, self.config.eval.batch_size)
    return fn(images)


def load_trained(workdir: str, step: Optional[int] = None) -> TrainedModel:
  """Loads the newest intact (or the given) checkpoint of a run, with the evaluation weights
  (EMA when `config.train.ema_decay` > 0) and predictions (flip-averaged when
  `config.train.test_time_flip`) of training's own evaluation."""
  config = experiment.resolve_config(workdir_lib.read_config(workdir), for_training=False)
  # The number of training examples only shapes the LR schedule, not the state's structure.
  exp = experiment.build(config, num_train=config.train.batch_size)
  sharder = sharding.Sharder()
  state = exp.init_state(jax.random.key(0), sharder)
  manager = checkpoint.make_manager(workdir, config.train.keep_checkpoints)
  if step is None:
    state, step, manager = checkpoint.restore_latest(manager, state)
    if step == 0:
      raise workdir_lib.UserError(f"No checkpoint in {manager.directory}: the run has not saved "
                                  "yet (train it first).")
  else:
    kept = sorted(int(s) for s in manager.all_steps())
    if int(step) not in kept:
      manager.close()
      raise workdir_lib.UserError(
          f"No checkpoint of step {step} in {manager.directory}; kept steps: "
          f"{', '.join(map(str, kept)) or 'none'} (config.train.keep_every_epochs keeps one "
          "every N epochs).")
    state = checkpoint.restore(manager, state, step)
  manager.close()
  return from_state(config, exp.model, state, int(step), sharder)


def predictor_of(config: ml_collections.ConfigDict, model: Any,
                 sharder: Optional[sharding.Sharder] = None) -> sharding.BatchedPredict:
  """The batched prediction of the reported function (build it once: it compiles once)."""
  flip = bool(experiment.train_option(config, "test_time_flip"))
  return sharding.BatchedPredict(experiment.predict_apply(model, flip), config.eval.batch_size,
                                 sharder)


def from_state(config: ml_collections.ConfigDict, model: Any, state: Any, step: int,
               sharder: Optional[sharding.Sharder] = None,
               predictor: Optional[sharding.BatchedPredict] = None) -> TrainedModel:
  """The model a train state reports: the weights and predictions of every evaluation (the EMA
  of the weights and the flip test-time augmentation when the run's config asks for them).
  `predictor`: a `predictor_of` to reuse (the train loop evaluates many states)."""
  variables = experiment.evaluation_variables(config, state)
  flip = bool(experiment.train_option(config, "test_time_flip"))
  theta = np.asarray(state.params["aps"]["theta_b"]) if "aps" in state.params else None
  predictor = predictor or predictor_of(config, model, sharder)
  # The predictor's own `apply`: one object for every state of a run, so attacks on the
  # evaluations of successive states reuse their compilations (the variables are traced).
  predict = predictor.bind(variables)
  apply = predictor.apply
  return TrainedModel(config, model, variables, theta, int(step), predict, flip, apply)
