"""Orbax checkpoints of the train state, and loading a finished run for evaluation and analysis."""
import dataclasses
import functools
import json
import os
from typing import Any, Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp


def make_manager(workdir: str, keep: int) -> ocp.CheckpointManager:
  directory = os.path.join(os.path.abspath(workdir), "checkpoints")
  return ocp.CheckpointManager(
      directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))


def save(manager: ocp.CheckpointManager, step: int, state) -> None:
  manager.save(step, args=ocp.args.StandardSave(state), force=True)


def restore(manager: ocp.CheckpointManager, state, step: int):
  """Restores checkpoint `step` into `state`'s structure and sharding."""
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  return manager.restore(step, args=ocp.args.StandardRestore(abstract))


def restore_latest(manager: ocp.CheckpointManager, state) -> Tuple[Any, int]:
  """Restores the newest checkpoint into `state`'s structure and sharding; (state, step)."""
  step = manager.latest_step()
  if step is None:
    return state, 0
  return restore(manager, state, step), int(step)


def make_predict_fn(model, variables, sharder, batch_size: int) -> Callable[[np.ndarray], np.ndarray]:
  """Batched, jitted `images float32 NHWC in [0, 1] -> logits` over any number of images."""
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False)[0],
                  in_shardings=(sharder.replicated, sharder.data), out_shardings=sharder.replicated)

  def predict(images) -> np.ndarray:
    images = np.asarray(images, np.float32)
    n = len(images)
    out = []
    for start in range(0, n, batch_size):
      chunk = images[start:start + batch_size]
      pad = batch_size - len(chunk)
      if pad:
        chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
      out.append(np.asarray(apply(variables, jax.device_put(chunk, sharder.data)))[:batch_size - pad])
    return np.concatenate(out) if out else np.zeros((0,), np.float32)

  return predict


@dataclasses.dataclass
class TrainedModel:
  """A trained run: config, Flax module and variables, with batched prediction helpers."""
  config: ml_collections.ConfigDict
  model: Any
  variables: Any
  theta_b: Optional[np.ndarray]
  step: int
  predict: Callable[[np.ndarray], np.ndarray]

  def open_ratios(self, images) -> Optional[np.ndarray]:
    """The attention's open-ratio vectors v (N, C1), or None when the model has no attention."""
    if self.config.model.attention == "none":
      return None
    fn = jax.jit(lambda x: self.model.apply(self.variables, x, train=False)[1])
    bs = self.config.eval.batch_size
    return np.concatenate([np.asarray(fn(jnp.asarray(images[i:i + bs], jnp.float32)))
                           for i in range(0, len(images), bs)])


def load_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: {workdir} is not a freqrobust workdir (train into it "
                            "with `python -m freqrobust.main --config=... --workdir=...`).")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def load_trained(workdir: str, step: Optional[int] = None) -> TrainedModel:
  """Loads the latest (or the given) checkpoint of a run for evaluation or analysis."""
  from freqrobust import train  # The state layout lives with the train step.
  config = train.resolve_config(load_config(workdir))
  # The number of training examples only shapes the LR schedule, not the state's structure.
  model, tx, _, _, _ = train.build(config, num_train=config.train.batch_size)
  from freqrobust import data as data_lib
  shape = data_lib.dataset_info(config.data)["shape"]
  sharder = train.Sharder()
  state = jax.jit(functools.partial(train.create_train_state, model=model, tx=tx, config=config,
                                    image_shape=shape), out_shardings=sharder.replicated)(
                                        jax.random.key(0))
  manager = make_manager(workdir, config.train.keep_checkpoints)
  if step is None:
    step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f"No checkpoint in {manager.directory}: the run has not saved yet.")
  state = restore(manager, state, step)
  variables = {"params": state.params["model"], "batch_stats": state.batch_stats}
  theta = np.asarray(state.params["aps"]["theta_b"]) if "aps" in state.params else None
  predict = make_predict_fn(model, variables, sharder, config.eval.batch_size)
  return TrainedModel(config, model, variables, theta, int(step), predict)
