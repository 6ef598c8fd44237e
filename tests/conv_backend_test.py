"""The oneDNN convolution backend (freqrobust/native/conv.py, config.train.conv_backend) against
XLA's convolutions: per operation over strides, paddings (asymmetric ones included), kernel sizes,
channel counts and batch 1; a small ResNet's gradients; two threads at once; a tiny training run;
and the fallback to XLA when the library is missing. The tests that run oneDNN skip when its
library is not built (`bash freqrobust/native/build.sh`; launch/setup.sh runs it)."""
import functools
import os
import subprocess
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from freqrobust import experiment, models, sharding, train
from freqrobust.native import conv
from freqrobust.workdir import UserError

import workdirs

BUILT, WHY_NOT = conv.available()
needs_library = pytest.mark.skipif(not BUILT, reason=f"oneDNN library not built: {WHY_NOT}")
ONEDNN = conv.make_conv(use_table=False)  # Every covered convolution on oneDNN.
NHWC = ("NHWC", "HWIO", "NHWC")
# Per operation, oneDNN and XLA add the same float32 products in a different order: relative
# differences of a few 1e-7 per output, up to ~1e-5 where terms cancel; 1e-4 leaves room.
RTOL, ATOL = 1e-4, 1e-5


@pytest.fixture
def fresh_selection():
  """Forgets the loaded library and the selections around a test that changes the environment."""
  conv._load.cache_clear()
  conv.select.cache_clear()
  yield
  conv._load.cache_clear()
  conv.select.cache_clear()


def _conv_and_grads(fn, x, w, strides, padding):
  dn = lax.conv_dimension_numbers(x.shape, w.shape, NHWC)

  def loss(x, w):
    y = fn(x, w, strides, padding, dimension_numbers=dn)
    return jnp.sum(jnp.sin(y)), y
  (_, y), grads = jax.jit(jax.value_and_grad(loss, (0, 1), has_aux=True))(x, w)
  return jax.block_until_ready((y, grads))  # Done before conv.calls() is read.


def _close(a, b, scale=None):
  a, b = np.asarray(a), np.asarray(b)
  scale = np.max(np.abs(b)) if scale is None else scale
  np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL * max(1.0, scale))


GRID = [  # (batch, size, c_in, c_out, kernel, stride, padding)
    (1, 8, 3, 8, 3, 1, "SAME"),
    (2, 8, 8, 16, 3, 2, "SAME"),  # Flax's SAME at stride 2 on an even side: (0, 1).
    (1, 8, 8, 4, 3, 2, ((1, 1), (1, 1))),  # PyTorch's padding=1.
    (1, 9, 4, 8, 3, 2, ((0, 1), (2, 0))),  # Asymmetric both ways, odd side.
    (2, 7, 16, 8, 3, 1, "VALID"),
    (1, 8, 8, 16, 1, 2, "VALID"),  # The strided 1x1 projection.
    (2, 6, 5, 3, 1, 1, "SAME"),
    (1, 10, 4, 4, 5, 2, ((2, 1), (1, 2))),
]


@needs_library
@pytest.mark.parametrize("batch,size,c_in,c_out,kernel,stride,padding", GRID)
def test_each_operation_equals_xla(batch, size, c_in, c_out, kernel, stride, padding):
  rng = np.random.default_rng(kernel * 100 + stride * 10 + c_in)
  x = jnp.asarray(rng.standard_normal((batch, size, size, c_in)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((kernel, kernel, c_in, c_out)) * 0.3, jnp.float32)
  before = conv.calls()
  y, (dx, dw) = _conv_and_grads(ONEDNN, x, w, (stride, stride), padding)
  y_ref, (dx_ref, dw_ref) = _conv_and_grads(lax.conv_general_dilated, x, w, (stride, stride),
                                            padding)
  after = conv.calls()
  assert all(after[k] > before[k] for k in after), (before, after)  # oneDNN ran all three.
  assert y.shape == y_ref.shape
  _close(y, y_ref)
  _close(dx, dx_ref)
  _close(dw, dw_ref)


@needs_library
@pytest.mark.parametrize("fn", [ONEDNN, conv.make_conv(True, table="intel")],
                         ids=["all_onednn", "intel_table"])
def test_second_derivatives_equal_xla(fn):
  """Each handler's gradient is made of the other two: gradients of gradients (an input-gradient
  penalty's) work and agree with XLA's, also where a table puts some handlers on XLA (the Intel
  table runs this strided 3x3 convolution's forward there)."""
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.standard_normal((1, 7, 7, 3)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((3, 3, 3, 4)) * 0.3, jnp.float32)

  def penalty(fn):
    def loss(x, w):
      y = fn(x, w, (2, 2), ((0, 1), (1, 0)), dimension_numbers=NHWC)
      return jnp.sum(jnp.tanh(y))
    return lambda x, w: jnp.sum(jax.grad(loss)(x, w) ** 2)
  got = jax.jit(jax.grad(penalty(fn), (0, 1)))(x, w)
  want = jax.jit(jax.grad(penalty(lax.conv_general_dilated), (0, 1)))(x, w)
  for a, b in zip(got, want):
    _close(a, b)


@needs_library
def test_what_onednn_does_not_cover_runs_on_xla():
  x = jnp.ones((1, 6, 6, 4), jnp.float32)
  w = jnp.ones((3, 3, 4, 4), jnp.float32)
  cases = [dict(lhs=x.astype(jnp.bfloat16), rhs=w.astype(jnp.bfloat16)),  # bfloat16
           dict(lhs=x, rhs=w, rhs_dilation=(2, 2)),  # dilation
           dict(lhs=x, rhs=w[:, :, :2], feature_group_count=2),  # groups
           dict(lhs=jnp.transpose(x, (0, 3, 1, 2)), rhs=w, dimension_numbers=("NCHW", "HWIO",
                                                                            "NCHW"))]
  for case in cases:
    case.setdefault("dimension_numbers", NHWC)
    before = conv.calls()
    got = jax.block_until_ready(ONEDNN(window_strides=(1, 1), padding="SAME", **case))
    want = lax.conv_general_dilated(window_strides=(1, 1), padding="SAME", **case)
    assert conv.calls() == before, case.keys()
    np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32))


@needs_library
def test_auto_leaves_the_strided_1x1_backward_data_to_xla():
  x = jnp.ones((1, 8, 8, 4), jnp.float32)
  w = jnp.full((1, 1, 4, 8), 0.5, jnp.float32)
  counts = {}
  for name, fn in (("auto", conv.make_conv(use_table=True)), ("onednn", ONEDNN)):
    before = conv.calls()
    _, (dx, _) = _conv_and_grads(fn, x, w, (2, 2), "VALID")
    counts[name] = {k: v - before[k] for k, v in conv.calls().items()}
    _, (dx_ref, _) = _conv_and_grads(lax.conv_general_dilated, x, w, (2, 2), "VALID")
    _close(dx, dx_ref)
  assert counts["auto"] == {"forward": 1, "backward_data": 0, "backward_weights": 1}
  assert counts["onednn"] == {"forward": 1, "backward_data": 1, "backward_weights": 1}


@needs_library
@pytest.mark.parametrize("table, want", [
    ("amd", {"forward": 1, "backward_data": 1, "backward_weights": 1}),
    ("intel", {"forward": 0, "backward_data": 0, "backward_weights": 0}),
    ("none", {"forward": 1, "backward_data": 1, "backward_weights": 1})])
def test_each_vendor_table_moves_its_cases_to_xla(table, want):
  """A 4x4 3x3 convolution: the Intel table runs its three passes on XLA (faster there, measured),
  the AMD table none; the results equal XLA's either way."""
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.standard_normal((2, 4, 4, 8)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((3, 3, 8, 8)) * 0.2, jnp.float32)
  before = conv.calls()
  y, (dx, dw) = _conv_and_grads(conv.make_conv(True, table=table), x, w, (1, 1), "SAME")
  assert {k: v - before[k] for k, v in conv.calls().items()} == want
  y_ref, (dx_ref, dw_ref) = _conv_and_grads(lax.conv_general_dilated, x, w, (1, 1), "SAME")
  for a, b in ((y, y_ref), (dx, dx_ref), (dw, dw_ref)):
    _close(a, b)


def test_the_table_follows_the_cpu_vendor_or_the_environment(monkeypatch):
  conv.table_name.cache_clear()
  try:
    monkeypatch.setenv(conv.TABLE_ENV, "amd")
    assert conv.table_name() == ("amd", f"{conv.TABLE_ENV}=amd")
    conv.table_name.cache_clear()
    monkeypatch.setenv(conv.TABLE_ENV, "arm")
    with pytest.raises(UserError, match=f"{conv.TABLE_ENV}='arm'; valid: amd, intel, none"):
      conv.table_name()
    conv.table_name.cache_clear()
    monkeypatch.delenv(conv.TABLE_ENV)
    with open("/proc/cpuinfo") as f:
      vendor = next(line.split(":")[1].strip() for line in f if line.startswith("vendor_id"))
    name, why = conv.table_name()
    assert name == {"GenuineIntel": "intel"}.get(vendor, "amd") and vendor in why
  finally:
    conv.table_name.cache_clear()
  # The rules: sizes and channel counts bound each case.
  assert conv.xla_handlers((3, 3), False, 4, 512, "intel") == (
      "forward", "backward_data", "backward_weights")
  assert conv.xla_handlers((3, 3), False, 8, 256, "intel") == ()
  assert conv.xla_handlers((3, 3), True, 16, 128, "intel") == ("backward_weights",)
  assert conv.xla_handlers((3, 3), True, 16, 64, "intel") == ()
  assert conv.xla_handlers((1, 1), True, 16, 128, "intel") == ("forward", "backward_data")
  assert conv.xla_handlers((1, 1), True, 28, 16, "intel") == ("backward_data",)
  assert conv.xla_handlers((1, 1), True, 16, 128, "amd") == ("backward_data",)
  assert conv.xla_handlers((3, 3), False, 4, 512, "none") == ()


def _small_resnet(conv_op, padding):
  cfg = workdirs.tiny_config().model
  cfg.padding = padding
  cfg.input_mean, cfg.input_std = (0.5,), (0.25,)
  return models.build_model(cfg, num_classes=5, conv_op=conv_op)


@needs_library
@pytest.mark.parametrize("padding", ["same", "pytorch"])
def test_small_resnet_gradients_equal_xla(padding):
  images = jax.random.uniform(jax.random.key(0), (2, 12, 12, 1))
  labels = jnp.array([1, 3])
  reference = _small_resnet(None, padding)
  variables = reference.init(jax.random.key(1), images, train=False)

  def grads(model):
    def loss(params):
      (logits, _), _ = model.apply({**variables, "params": params}, images, train=True,
                                   mutable=["batch_stats"])
      return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(2), labels])
    return jax.block_until_ready(jax.jit(jax.value_and_grad(loss))(variables["params"]))
  before = conv.calls()
  loss, got = grads(_small_resnet(ONEDNN, padding))
  assert conv.calls()["backward_weights"] > before["backward_weights"]
  loss_ref, want = grads(reference)
  np.testing.assert_allclose(loss, loss_ref, rtol=1e-5)
  # Per leaf, the differences are ~1e-6 of the leaf's largest gradient (the backward passes sum
  # in another order); single small entries differ by up to ~1e-3 of themselves, where BatchNorm's
  # statistics of two images cancel most of a sum. Hence rtol 1e-3 with atol 1e-5 of the leaf.
  for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    scale = float(np.max(np.abs(np.asarray(b))))
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-5 * scale)


@needs_library
def test_two_threads_at_once():
  """Python threads (and XLA's own worker threads) call the handlers concurrently; one executor
  thread runs them all, each caller gets its own result."""
  rng = np.random.default_rng(7)
  shapes = [((2, 10, 10, 6), (3, 3, 6, 8), 1), ((1, 9, 9, 4), (3, 3, 4, 12), 2)]
  jobs = []
  for x_shape, w_shape, stride in shapes:
    x = jnp.asarray(rng.standard_normal(x_shape), jnp.float32)
    w = jnp.asarray(rng.standard_normal(w_shape) * 0.3, jnp.float32)
    fn = jax.jit(functools.partial(_conv_and_grads, ONEDNN, strides=(stride, stride),
                                   padding="SAME"))
    want = _conv_and_grads(lax.conv_general_dilated, x, w, (stride, stride), "SAME")
    fn(x, w)  # Compiled before the threads start.
    jobs.append((fn, x, w, want))
  errors = []

  def worker(fn, x, w, want):
    try:
      for _ in range(20):
        y, (dx, dw) = fn(x, w)
        for a, b in zip((y, dx, dw), (want[0],) + tuple(want[1])):
          _close(a, b)
    except Exception as err:  # pylint: disable=broad-except
      errors.append(err)
  threads = [threading.Thread(target=worker, args=job) for job in jobs]
  for t in threads:
    t.start()
  for t in threads:
    t.join(120)
  assert not any(t.is_alive() for t in threads), "a caller hung"
  assert not errors, errors


def _losses(backend: str, steps: int = 4):
  config = workdirs.tiny_config()
  config.train.learning_rate = 0.05
  config.train.conv_backend = backend
  config = experiment.resolve_config(config)
  exp = experiment.build(config, config.data.synthetic_examples)
  sharder = sharding.Sharder(jax.devices()[:1])
  images, labels = train.load_data(config)[:2]
  order = train.EpochOrder(len(images), config.train.batch_size, config.seed)
  state = exp.init_state(jax.random.key(0), sharder)
  step = jax.jit(functools.partial(train.train_step, method=exp.method, schedule=exp.schedule))
  losses = []
  for s in range(steps):
    idx = order.indices(s)
    state, metrics = step(state, {"image": jnp.asarray(images[idx]),
                                  "label": jnp.asarray(labels[idx])}, jax.random.key(s))
    losses.append(float(metrics["loss"]))  # float(): the step has run.
  return np.array(losses), exp.model


@needs_library
def test_tiny_training_run_matches_xla():
  before = conv.calls()
  onednn, model = _losses("onednn")
  assert model.conv_op is not None and conv.calls()["forward"] > before["forward"]
  xla, model = _losses("xla")
  assert model.conv_op is None
  # The first loss is one forward pass: per-operation differences only (float32 sums in another
  # order, ~1e-7 relative). Each SGD step (lr 0.05) adds the gradients' differences (~1e-6 of
  # each leaf, test above) to the weights, so the later losses may drift apart by more: rtol 1e-4
  # over 4 steps, far below the loss's own change per step (~1e-1 here).
  np.testing.assert_allclose(onednn[0], xla[0], rtol=1e-5)
  np.testing.assert_allclose(onednn, xla, rtol=1e-4)
  assert np.max(np.abs(np.diff(xla))) > 100 * np.max(np.abs(onednn - xla))


def test_missing_library_falls_back_to_xla(monkeypatch, capsys, fresh_selection):
  monkeypatch.setenv(conv.LIB_ENV, "off")
  assert conv.available() == (False, f"{conv.LIB_ENV}=off")
  assert conv.select("auto") is None
  assert "Convolutions: XLA (config.train.conv_backend='auto': FREQROBUST_ONEDNN_LIB=off)" in \
      capsys.readouterr().out
  with pytest.raises(UserError, match=r"conv_backend='onednn'.*'auto'"):
    conv.select("onednn")
  assert conv.calls() == {"forward": 0, "backward_data": 0, "backward_weights": 0}
  # A run under "auto" builds and computes with XLA's convolutions.
  config = experiment.resolve_config(workdirs.tiny_config())
  model = experiment.build(config, 64).model
  assert model.conv_op is None
  variables = model.init(jax.random.key(0), jnp.zeros((1, 12, 12, 1)), train=False)
  assert np.isfinite(np.asarray(model.apply(variables, jnp.ones((1, 12, 12, 1)))[0])).all()


def test_a_library_that_is_not_there_is_named(monkeypatch, tmp_path, fresh_selection):
  missing = str(tmp_path / "libfreqrobust_conv.so")
  monkeypatch.setenv(conv.LIB_ENV, missing)
  ok, reason = conv.available()
  assert not ok and missing in reason and "build.sh" in reason
  (tmp_path / "libfreqrobust_conv.so").write_bytes(b"not a library")
  conv._load.cache_clear()
  ok, reason = conv.available()
  assert not ok and "does not load" in reason


def test_auto_on_several_devices_and_the_config_check(capsys, fresh_selection):
  # tests/conftest.py gives 8 CPU devices: "auto" keeps XLA (a custom call is not partitioned).
  assert jax.device_count() > 1
  assert conv.select("auto") is None
  out = capsys.readouterr().out
  assert "XLA" in out and ("CPU devices" in out or "FREQROBUST_ONEDNN_LIB" in out
                           or "not built" in out)
  config = workdirs.tiny_config()
  config.train.conv_backend = "mkl"
  with pytest.raises(UserError, match="config.train.conv_backend='mkl'.*auto, xla, onednn"):
    experiment.resolve_config(config)
  del config.train["conv_backend"]  # A config.json written before the field: "auto".
  assert experiment.resolve_config(config).train.get("conv_backend", "auto") == "auto"


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(REPO, "freqrobust", "native", "build.sh")


def _build(tmp_path, **env):
  env = dict(os.environ, FREQROBUST_NATIVE_DIR=str(tmp_path / "native"), **env)
  return subprocess.run(["bash", BUILD], env=env, capture_output=True, text=True, timeout=120)


def test_the_build_skips_cleanly_without_a_compiler(tmp_path):
  out = _build(tmp_path, CXX=str(tmp_path / "no-g++"))
  assert out.returncode == 0, out.stderr
  assert "no C++ compiler" in out.stderr and "run on XLA" in out.stderr
  assert not (tmp_path / "native" / "libfreqrobust_conv.so").exists()


def test_the_build_skips_cleanly_without_the_wheels(tmp_path):
  # A `python` whose pip finds nothing (the package index without the wheels); g++ is faked too,
  # so the test needs neither.
  python = tmp_path / "python"
  python.write_text(f'#!/bin/sh\n[ "$1 $2" = "-m pip" ] && exit 1\nexec {sys.executable} "$@"\n')
  python.chmod(0o755)
  out = _build(tmp_path, PYTHON=str(python), CXX="true")
  assert out.returncode == 0, out.stderr
  assert "onednn-cpu-gomp" in out.stderr and "not on the package index" in out.stderr
  assert not (tmp_path / "native" / "libfreqrobust_conv.so").exists()


@needs_library
@pytest.mark.parametrize("preset,want", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_threads_sleep_when_idle_unless_the_user_says(preset, want):
  env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
  if preset:
    env["OMP_WAIT_POLICY"] = preset
  code = ("import os; from freqrobust.native import conv; assert conv.available()[0]; "
          "print(os.environ['OMP_WAIT_POLICY'])")
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120, cwd=REPO)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip().splitlines()[-1] == want
