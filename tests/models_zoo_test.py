"""The imported backbones (wrn, preact_resnet18, resnet18 with PyTorch padding) compute what the
published PyTorch definitions compute.

The references are RobustBench's own definitions (the `robustbench` package, installed with
--no-deps by launch/setup.sh; its architecture files import only torch and are loaded by path,
so the package's heavy __init__ never runs). Random weights and BatchNorm statistics, random
images in [0, 1]: logits and input gradients (of the true-class logits' sum) agree to 1e-5
relative (torch in float64 as the truth, Flax in float32), and a twin with the wrong stride-2
padding or the other shortcut variant is refused by the same comparison. Parameter counts at full
size need neither torch nor compute (jax.eval_shape).
"""
import importlib.util
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from freqrobust import convert, models

TOLERANCE = 1e-5  # relative, in the L2 norm over the batch


# ----------------------------------------------------------------------------- helpers


def rb_architecture(module: str):
  """robustbench/model_zoo/architectures/<module>.py, loaded by path (needs torch)."""
  pytest.importorskip("torch")
  spec = importlib.util.find_spec("robustbench")
  if spec is None or not spec.submodule_search_locations:
    pytest.skip("robustbench not installed (launch/setup.sh: pip install --no-deps "
                "robustbench==1.1.1)")
  path = os.path.join(spec.submodule_search_locations[0], "model_zoo", "architectures",
                      f"{module}.py")
  loader = importlib.util.spec_from_file_location(f"_robustbench_{module}", path)
  mod = importlib.util.module_from_spec(loader)
  loader.loader.exec_module(mod)
  import torch
  torch.set_num_threads(1)  # The machine's cores are shared; threads only contend.
  return mod


def randomise(model, seed: int = 0):
  """Random BatchNorm statistics and affine parameters and linear biases (the init leaves them
  at 0/1, where a transposed mean/var or scale/bias would go unnoticed); float64, eval mode."""
  import torch
  torch.manual_seed(seed)
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.running_mean.normal_(0.0, 0.2)
        m.running_var.uniform_(0.5, 2.0)
        m.weight.uniform_(0.5, 1.5)
        m.bias.normal_(0.0, 0.2)
      elif isinstance(m, torch.nn.Linear) and m.bias is not None:
        m.bias.normal_(0.0, 0.2)
  return model.double().eval()


def images_and_labels(n: int = 2, seed: int = 0):
  rng = np.random.default_rng(seed)
  return (rng.uniform(0.0, 1.0, (n, 32, 32, 3)).astype(np.float32),
          rng.integers(0, 10, n).astype(np.int32))


def torch_outputs(model, images, labels):
  """(logits, d sum(true-class logits) / d images NHWC), float64."""
  import torch
  x = torch.tensor(images.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
  logits = model(x)
  logits[torch.arange(len(labels)), torch.tensor(labels, dtype=torch.long)].sum().backward()
  return logits.detach().numpy(), x.grad.numpy().transpose(0, 2, 3, 1)


def flax_model(arch: str, overrides=None, mean=None, std=None, **fields):
  """The Flax backbone of `arch` (convert.ARCHS) with `overrides` of its model fields."""
  spec = convert.ARCHS[arch]
  model_fields = convert.model_config(arch, **fields)
  model_fields.update(overrides or {})
  cfg = ml_collections.ConfigDict(dict(
      name=model_fields["name"], attention="none", attention_hidden=8,
      input_mean=tuple(spec.mean if mean is None else mean),
      input_std=tuple(spec.std if std is None else std), dtype="float32",
      small_stage_sizes=(1,), small_widths=(8,)))
  for k, v in model_fields.items():
    cfg[k] = v
  return models.build_model(cfg, num_classes=10)


def converted(arch: str, torch_model, model):
  """(variables, Conversion) of the torch model's state dict for the Flax `model`."""
  abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                               train=False))
  result = convert.convert_state_dict(convert.state_dict_arrays(torch_model.state_dict()), arch,
                                      abstract)
  return result.variables, result


def flax_outputs(model, variables, images, labels):
  """(logits, input gradient of the true-class logits' sum) in float64 (x64 enabled for this
  call only; the model computes in float64 with its float32 variables), compiled once."""
  with jax.enable_x64(True):
    model64 = model.clone(dtype=jnp.float64)

    def true_logits(v, x):
      logits, _ = model64.apply(v, x, train=False)
      return jnp.sum(logits[jnp.arange(len(labels)), labels]), logits
    grad, logits = jax.jit(jax.grad(true_logits, argnums=1, has_aux=True))(
        variables, jnp.asarray(images, jnp.float64))
    return np.asarray(logits, np.float64), np.asarray(grad, np.float64)


def flax_logits(model, variables, images):
  """Logits in the model's own dtype (float32), as evaluation computes them."""
  logits, _ = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables,
                                                                   jnp.asarray(images))
  return np.asarray(logits, np.float64)


def relative_error(a, b) -> float:
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# The references, small where the definition allows it (WideResNets at depth 16, width 2: both
# kinds of block, with and without the projection shortcut); the PreActResNets and ResNet-18 are
# fixed at full width (32x32, batch 2).
def trades_wrn():
  return rb_architecture("wide_resnet").WideResNet(depth=16, widen_factor=2, sub_block1=True)


def dm_wrn():
  dm = rb_architecture("dm_wide_resnet")
  return dm.DMWideResNet(num_classes=10, depth=16, width=2, activation_fn=dm.Swish)


def preact_v1():
  rn = rb_architecture("resnet")
  return rn.PreActResNet(rn.PreActBlock, [2, 2, 2, 2])


def preact_v2():
  rn = rb_architecture("resnet")
  return rn.PreActResNet(rn.PreActBlockV2, [2, 2, 2, 2], bn_before_fc=True)


def dm_preact():
  dm = rb_architecture("dm_wide_resnet")
  return dm.DMPreActResNet(num_classes=10, depth=18, width=0, activation_fn=dm.Swish)


def resnet18():
  return rb_architecture("resnet").ResNet18()


WRN_SIZE = dict(depth=16, width=2)
# (arch, reference, fields, a wrong twin's overrides: a variant the comparison must refuse).
CASES = {
    "wrn": ("wrn", trades_wrn, WRN_SIZE, {"padding": "same"}),
    "dm_wrn": ("dm_wrn", dm_wrn, WRN_SIZE, {"padding": "pytorch"}),
    "preact_resnet18": ("preact_resnet18", preact_v1, {}, {"preact_shortcut": "activated"}),
    "preact_resnet18_v2": ("preact_resnet18_v2", preact_v2, {}, {"preact_shortcut": "input"}),
    "dm_preact_resnet18": ("dm_preact_resnet18", dm_preact, {}, {"padding": "pytorch"}),
    "resnet18": ("resnet18", resnet18, {}, {"padding": "same"}),
}


# ----------------------------------------------------------------------------- equality with torch


@pytest.mark.parametrize("case", list(CASES))
def test_logits_and_input_gradients_equal_the_pytorch_definition(case):
  arch, reference, fields, wrong = CASES[case]
  torch_model = randomise(reference())
  images, labels = images_and_labels()
  want_logits, want_grad = torch_outputs(torch_model, images, labels)
  model = flax_model(arch, **fields)
  variables, result = converted(arch, torch_model, model)
  # Float64 on both sides: logits and input gradients agree far inside the tolerance, whatever
  # the CPU's summation order. (Float32 input gradients of a ReLU network are not a fair test:
  # a pre-activation within rounding of 0 flips a ReLU's derivative, which moved one float32
  # measurement by 5e-4 under a changed thread count.)
  logits, grad = flax_outputs(model, variables, images, labels)
  assert relative_error(logits, want_logits) < TOLERANCE, (logits, want_logits)
  assert relative_error(grad, want_grad) < TOLERANCE
  # The model as evaluation runs it, in float32: logits are continuous in every rounding.
  logits32 = flax_logits(model, variables, images)
  assert relative_error(logits32, want_logits) < TOLERANCE, (logits32, want_logits)
  assert np.array_equal(np.argmax(logits32, 1), np.argmax(want_logits, 1))
  if case == "wrn":  # The TRADES WideResNet's unused sub_block1 is on the ignore list.
    assert any(k.startswith("sub_block1.") for k in result.ignored)
  # The wrong twin: same weights, the other padding or shortcut variant. The comparison that
  # accepts the right model must refuse it by a wide margin.
  twin = flax_model(arch, overrides=wrong, **fields)
  assert relative_error(flax_logits(twin, variables, images), want_logits) > 100 * TOLERANCE


def test_padding_same_is_deepminds_zero_one_padding_and_pytorch_is_one_one():
  """The trap, directly: at stride 2 on an even side, SAME pads (0, 1), PyTorch (1, 1)."""
  from freqrobust.models.layers import conv3x3_padding
  import flax.linen as nn
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 8, 8, 1)), jnp.float32)
  kernel = jnp.asarray(np.random.default_rng(1).normal(size=(3, 3, 1, 1)), jnp.float32)
  def conv(padding):
    layer = nn.Conv(1, (3, 3), (2, 2), padding=padding, use_bias=False)
    return layer.apply({"params": {"kernel": kernel}}, x)
  by_hand = lambda pads: conv([pads, pads])
  np.testing.assert_allclose(conv(conv3x3_padding("same")), by_hand((0, 1)), rtol=1e-6)
  np.testing.assert_allclose(conv(conv3x3_padding("pytorch")), by_hand((1, 1)), rtol=1e-6)
  assert not np.allclose(conv(conv3x3_padding("same")), conv(conv3x3_padding("pytorch")))


# ----------------------------------------------------------------------------- without torch


def parameter_count(model) -> int:
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                             train=False))
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes["params"]))


@pytest.mark.parametrize("depth,width,millions", [(28, 10, 36.5), (34, 10, 46.2), (70, 16, 266.8)])
def test_full_size_wideresnet_parameter_counts(depth, width, millions):
  """The published sizes (RobustBench's and the papers' figures, in millions)."""
  count = parameter_count(flax_model("wrn", depth=depth, width=width))
  assert round(count / 1e6, 1) == millions
  # DeepMind's variant has the same variables.
  assert parameter_count(flax_model("dm_wrn", depth=depth, width=width)) == count


def test_full_size_resnet18_parameter_counts():
  # PreActResNet-18 with 1x1 shortcuts and no final BN, 11.17M; the final BN adds 2 x 512;
  # DeepMind's 3x3 shortcuts add 8 x (C_in x C_out) per projection; ResNet-18 11.17M.
  v1 = parameter_count(flax_model("preact_resnet18"))
  assert v1 == 11_171_146
  assert parameter_count(flax_model("preact_resnet18_v2")) == v1 + 1024
  assert parameter_count(flax_model("dm_preact_resnet18")) == (
      v1 + 1024 + 8 * (64 * 128 + 128 * 256 + 256 * 512))
  assert parameter_count(flax_model("resnet18")) == 11_173_962


@pytest.mark.parametrize("arch", ["wrn", "dm_preact_resnet18"])
def test_first_layer_is_addressable(arch):
  """models.first_layer / first_layer_kernel read the imported models' first convolution."""
  fields = WRN_SIZE if arch == "wrn" else {}
  model = flax_model(arch, **fields)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                             train=False))
  rng = np.random.default_rng(0)  # Random values of the right shapes, without running init.
  variables = jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape), jnp.float32), shapes)
  kernel = models.first_layer_kernel(variables)
  assert kernel.shape == (3, 3, 3, 16 if arch == "wrn" else 64)
  images, _ = images_and_labels()
  act = models.first_layer(model, variables, jnp.asarray(images))
  assert act.shape == (2, 32, 32, kernel.shape[-1]) and float(jnp.min(act)) >= 0.0


def test_bad_model_fields_and_old_configs():
  with pytest.raises(ValueError, match="wrn_depth"):
    flax_model("wrn", depth=27, width=1)
  with pytest.raises(ValueError, match="padding"):
    flax_model("wrn", overrides={"padding": "valid"}, **WRN_SIZE)
  with pytest.raises(ValueError, match="preact_shortcut"):
    flax_model("preact_resnet18", overrides={"preact_shortcut": "both"})
  with pytest.raises(ValueError, match="activation"):
    flax_model("resnet18", overrides={"activation": "swish"})
  # A config.json written before these fields builds the model it built then.
  old = ml_collections.ConfigDict(dict(name="resnet18", attention="none", attention_hidden=8,
                                       input_mean=(0.5,), input_std=(0.25,), dtype="float32"))
  model = models.build_model(old, num_classes=10)
  assert model.padding == "same"
