"""Checkpoints and workdirs on any storage (issue #28).

`restore_latest` tells a config change from damage by comparing the saved metadata (tree paths,
shapes, dtypes) with the state the config builds, not by the words of Orbax's errors: a damaged
checkpoint whose error mentions "shape" is moved aside and the older one restored; a real config
change is still refused and touches nothing.

Workdirs go through one path layer (etils.epath): a URL scheme it cannot write is refused up
front and never becomes a local folder named `scheme:`; the whole workdir layer (config, metrics,
results, analysis folders, the lock) runs on a second filesystem implementation, an in-memory
fsspec filesystem mounted as s3:// (epath's fsspec backend, no network), where the lock is a lease.
"""
import json
import os
import time

import jax
import numpy as np
import pytest
from etils import epath

from freqrobust import checkpoint, experiment, train
from freqrobust import workdir as workdir_lib

import workdirs


def _state(config):
  """The config's abstract state, placed on one device (what restore_latest restores into)."""
  shapes = experiment.build(experiment.resolve_config(config), 64).abstract_state()
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device), shapes)


@pytest.fixture
def two_checkpoints(tmp_path):
  """A workdir with checkpoints 1 and 2 of the tiny config's state (random weights)."""
  workdir = workdirs.random_workdir(str(tmp_path / "run"))
  manager = checkpoint.make_manager(workdir, 3)
  step1 = checkpoint.restore(manager, _state(workdirs.tiny_config()), 1)
  checkpoint.save(manager, 2, step1)
  manager.wait_until_finished()
  manager.close()
  return workdir, step1


def test_damage_whose_error_mentions_shape_is_damage_not_a_config_change(two_checkpoints,
                                                                         monkeypatch):
  workdir, step1 = two_checkpoints
  real_restore = checkpoint.restore

  def restore(manager, state, step):  # Step 2's data is damaged; its error speaks of shapes.
    if step == 2:
      raise ValueError("Error reading array: chunk shape (3, 3) does not match the stored shape")
    return real_restore(manager, state, step)

  monkeypatch.setattr(checkpoint, "restore", restore)
  manager = checkpoint.make_manager(workdir, 3)
  state, step, manager = checkpoint.restore_latest(manager, _state(workdirs.tiny_config()))
  assert step == 1
  assert os.path.isdir(os.path.join(workdir, workdir_lib.DAMAGED_CHECKPOINTS, "2"))  # Kept.
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(step1)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_changed_model_is_refused_by_its_metadata_and_nothing_moves(two_checkpoints):
  workdir, _ = two_checkpoints
  config = workdirs.tiny_config()
  config.model.attention = "basic"  # Another attention module: other parameters.
  manager = checkpoint.make_manager(workdir, 3)
  with pytest.raises(checkpoint.IncompatibleCheckpoint, match=r"stem/attention.*not built"):
    checkpoint.restore_latest(manager, _state(config))
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["1", "2"]
  assert not os.path.exists(os.path.join(workdir, workdir_lib.DAMAGED_CHECKPOINTS))
  config = workdirs.tiny_config()
  config.model.small_widths = (8, 8, 16)  # Same tree, other shapes.
  with pytest.raises(checkpoint.IncompatibleCheckpoint, match=r"saved \(.*\) float32, built"):
    checkpoint.restore_latest(manager, _state(config))


# ----------------------------------------------------------------------------- storage


@pytest.mark.parametrize("workdir", ["memory://bucket/run", "gcs://bucket/run", "http://x/run"])
def test_a_url_the_path_layer_cannot_write_is_refused_up_front(tmp_path, monkeypatch, workdir):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(workdir_lib.UserError, match=r"URL scheme .* not supported.*gs://"):
    train.train_and_evaluate(workdirs.tiny_config(), workdir)
  assert os.listdir(tmp_path) == []  # No local folder named "memory:" (or anything else).


@pytest.fixture
def s3_in_memory(monkeypatch):
  """s3:// served by an in-memory fsspec filesystem through epath's fsspec backend."""
  import fsspec
  from fsspec.implementations.memory import MemoryFileSystem
  from etils.epath import backend, gpath

  class S3Memory(MemoryFileSystem):
    protocol = ("s3",)
    store, pseudo_dirs = {}, [""]

  fsspec.register_implementation("s3", S3Memory, clobber=True)
  monkeypatch.setattr(gpath, "_is_tf_installed", lambda: False)  # fsspec, not tf.io.gfile.
  backend.fsspec_backend._get_filesystem.cache_clear()
  yield S3Memory
  backend.fsspec_backend._get_filesystem.cache_clear()


def test_the_workdir_layer_runs_on_another_filesystem(s3_in_memory, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  workdir = "s3://bucket/runs/x"
  config = experiment.resolve_config(workdirs.tiny_config())
  with workdir_lib.locked(workdir):
    workdir_lib.write_config(workdir, config)
    assert workdir_lib.read_config(workdir).model.attention == "extended"
    assert workdir_lib.config_changes(workdir, config) == []
    log = workdir_lib.MetricsWriter(workdir)
    for step in (1, 2, 3):
      log.write(step, {"loss": 1.0 / step})
    log.close()
    assert workdir_lib.truncate_metrics(workdir, 2) == 1  # As a resume from step 2 does.
    log = workdir_lib.MetricsWriter(workdir)  # Resumed: continues the file, no appends needed.
    log.write(3, {"loss": 0.25})
    log.close()
    assert [(m["step"], m["loss"]) for m in workdir_lib.read_metrics(workdir)] == [
        (1, 1.0), (2, 0.5), (3, 0.25)]
    workdir_lib.write_results(workdir, {"status": "finished", "step": 3})
    assert workdir_lib.read_results(workdir)["step"] == 3
    out = workdir_lib.tool_dir(workdir, "pdm")
    assert out == "s3://bucket/runs/x/analysis/pdm" and epath.Path(out).is_dir()
    # The lease: a second run is refused while the first holds the workdir.
    with pytest.raises(workdir_lib.WorkdirBusy, match="lease.*object store has no lock"):
      with workdir_lib.locked(workdir):
        pass
  assert not epath.Path(workdir_lib.path(workdir, workdir_lib.LOCK)).exists()  # Released.
  # A holder that died leaves its lease behind; once expired it no longer blocks.
  lock = epath.Path(workdir_lib.path(workdir, workdir_lib.LOCK))
  lock.write_text(json.dumps({"holder": "pid 1 on host gone", "expires": time.time() - 1}))
  with workdir_lib.locked(workdir):
    assert "pid" in json.loads(lock.read_text())["holder"]
  assert os.listdir(tmp_path) == []  # Nothing local: no folder named "s3:".
  assert any(k.startswith("/bucket/runs/x/config.json") or k.endswith("runs/x/config.json")
             for k in s3_in_memory.store)
