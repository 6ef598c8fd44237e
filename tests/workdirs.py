"""Shared test fixtures: a tiny synthetic-data config and a workdir as training leaves it."""
import os

import jax
import jax.numpy as jnp
import numpy as np

from configs import default


def tiny_config():
  """Small ResNet (8 channels, extended attention) on 12x12x1 synthetic data, batch 16."""
  config = default.get_config()
  config.data.dataset = "synthetic"
  config.data.synthetic_size = 12
  config.data.synthetic_channels = 1
  config.data.synthetic_examples = 64
  config.model.small_widths = (8, 8, 8)
  config.model.attention = "extended"
  config.model.attention_hidden = 8
  config.train.batch_size = 16
  config.eval.batch_size = 40
  return config


def tiny_paper_config(**train_overrides):
  """`tiny_config` with the paper's augmentation (suppression p = 0.5, NFD, learnable APS), two
  epochs at learning rate 0.05; keyword arguments override `config.train` fields."""
  config = tiny_config()
  config.augment.pad = 2
  config.augment.suppress_prob = 0.5
  config.augment.nfd = True
  config.aps.configuration = "learnable"
  config.train.num_epochs = 2
  config.train.learning_rate = 0.05
  for k, v in train_overrides.items():
    config.train[k] = v
  return config


def random_workdir(workdir: str) -> str:
  """A workdir as `train_and_evaluate` leaves it (config.json + checkpoint), with random weights.

  The state's structure comes from `jax.eval_shape` (no compilation); batch-norm variances are 1.
  """
  from freqrobust import experiment
  from freqrobust import workdir as workdir_lib
  config = experiment.resolve_config(tiny_config())
  os.makedirs(workdir)
  workdir_lib.write_config(workdir, config)
  return random_checkpoint(workdir, 1, seed=0)


def random_checkpoint(workdir: str, step: int, seed: int) -> str:
  """Saves a checkpoint of random weights (drawn with `seed`) at `step` into a `random_workdir`
  (checkpoints kept: 2), as a training that went on to `step` would."""
  from freqrobust import checkpoint, experiment
  from freqrobust import workdir as workdir_lib
  config = experiment.resolve_config(workdir_lib.read_config(workdir))
  shapes = experiment.build(config, 64).abstract_state()
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    if not jnp.issubdtype(leaf.dtype, jnp.floating):
      return np.zeros(leaf.shape, leaf.dtype)
    if "var" in jax.tree_util.keystr(path):
      return np.ones(leaf.shape, leaf.dtype)
    return (0.3 * rng.standard_normal(leaf.shape)).astype(leaf.dtype)

  manager = checkpoint.make_manager(workdir, 2)
  checkpoint.save(manager, step, jax.tree_util.tree_map_with_path(fill, shapes))
  manager.wait_until_finished()
  manager.close()
  return workdir
