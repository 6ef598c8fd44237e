"""Laws of the backbones and the APS attention."""
import chex
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import default
from freqrobust import models
from freqrobust.models.layers import ChannelAttention


def model_cfg(**overrides):
  cfg = default.get_config().model
  cfg.input_mean, cfg.input_std = (0.5,), (0.25,)
  cfg.attention_hidden = 8
  cfg.small_widths = (8, 8, 16)
  for k, v in overrides.items():
    cfg[k] = v
  return cfg


@pytest.mark.parametrize("attention,channels,size",
                         [("none", 1, 28), ("basic", 3, 32), ("extended", 3, 20),
                          ("extended", 1, 9)])
def test_small_resnet_shapes_and_open_ratios(attention, channels, size):
  model = models.build_model(model_cfg(attention=attention), num_classes=7)
  x = jax.random.uniform(jax.random.key(0), (2, size, size, channels))
  variables = model.init(jax.random.key(1), x)
  (logits, v), _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
  chex.assert_shape(logits, (2, 7))
  if attention == "none":
    assert v is None
  else:
    chex.assert_shape(v, (2, 8))
    assert bool(jnp.all((v > 0) & (v < 1)))
  act = models.first_layer(model, variables, x)
  chex.assert_shape(act, (2, size, size, 8))
  assert bool(jnp.all(act >= 0))  # After the ReLU.
  chex.assert_shape(models.first_layer_kernel(variables), (3, 3, channels, 8))


def test_small_resnet_without_a_full_resolution_stage():
  """small_stage_sizes (0, 1, 1): the stem (and attention) at full resolution, then two stride-2
  stages; no block runs at the input's resolution, and no parameters of a first stage exist."""
  model = models.build_model(model_cfg(attention="extended", small_stage_sizes=(0, 1, 1)),
                             num_classes=10)
  x = jax.random.uniform(jax.random.key(0), (2, 28, 28, 1))
  variables = model.init(jax.random.key(1), x)
  (logits, v), _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
  chex.assert_shape(logits, (2, 10))
  chex.assert_shape(v, (2, 8))
  blocks = sorted(k for k in variables["params"] if k.startswith("BasicBlock"))
  assert len(blocks) == 2  # Only the two stride-2 stages.
  # Both blocks downsample: their projection convolutions have stride 2 (7x7 at the head).
  inter = model.apply(variables, x,
                      capture_intermediates=lambda m, _: type(m).__name__ == "BasicBlock")
  shapes = [o[0].shape for o in jax.tree_util.tree_leaves(
      inter[1]["intermediates"], is_leaf=lambda t: isinstance(t, tuple))]
  assert sorted(s[1] for s in shapes) == [7, 14]


@pytest.mark.parametrize("name,width", [("resnet18", 64), ("vgg16", 64), ("vgg16_bn", 64)])
def test_paper_backbones_build_with_attention(name, width):
  model = models.build_model(model_cfg(name=name, attention="basic"), num_classes=10)
  x = jnp.zeros((1, 32, 32, 3))
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  kernel = shapes["params"]["stem"]["semantic"]["conv"]["kernel"]
  assert kernel.shape == (3, 3, 3, width)
  assert ("bn" in shapes["params"]["stem"]["semantic"]) == (name != "vgg16")
  n_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(shapes["params"]))
  # ResNet-18 (CIFAR) has 11.17 M parameters and VGG-16 (CIFAR head) 14.7 M, plus the attention.
  expected = {"resnet18": 11.17e6, "vgg16": 14.72e6, "vgg16_bn": 14.73e6}[name]
  assert abs(n_params - expected) / expected < 0.01


def test_attention_gates_channels_by_v():
  """The gated map is the input times v, channel by channel; extended adds conv+BN params."""
  x = jax.random.normal(jax.random.key(0), (2, 6, 6, 4))
  for extended in (False, True):
    att = ChannelAttention(hidden=5, extended=extended,
                           norm=lambda **kw: nn.BatchNorm(use_running_average=True, **kw))
    variables = att.init(jax.random.key(1), x)
    gated, v = att.apply(variables, x)
    chex.assert_trees_all_close(gated, x * v[:, None, None, :], rtol=1e-6)
    assert ("conv" in variables["params"]) == extended


def test_extended_attention_sees_more_than_the_pooled_input():
  """Two maps with equal per-channel means (a spatial shuffle inside a zero border) get the same
  gate from the basic module, which sees only the pooled input, but not from the extended one:
  its conv + BN + ReLU before the pooling is what makes it "extended" (without the ReLU, pooling
  would commute with conv and BN and the two gates would be equal too)."""
  rng = np.random.default_rng(0)
  inner = rng.normal(size=(1, 6, 6, 4)).astype(np.float32)
  shuffled = inner.reshape(1, 36, 4)[:, rng.permutation(36)].reshape(1, 6, 6, 4)
  x = jnp.asarray(np.pad(np.concatenate([inner, shuffled]), ((0, 0), (1, 1), (1, 1), (0, 0))))
  for extended in (False, True):
    att = ChannelAttention(hidden=5, extended=extended,
                           norm=lambda **kw: nn.BatchNorm(use_running_average=True, **kw))
    _, v = att.apply(att.init(jax.random.key(1), x), x)
    gap = float(jnp.max(jnp.abs(v[0] - v[1])))
    assert (gap > 1e-3) if extended else (gap < 1e-6), (extended, gap)


def test_input_normalisation_is_inside_the_model():
  """Shifting input_mean by d is the same as shifting the image by -d."""
  m1 = models.build_model(model_cfg(input_mean=(0.5,)), 10)
  m2 = models.build_model(model_cfg(input_mean=(0.4,)), 10)
  x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 1))
  variables = m1.init(jax.random.key(1), x)
  chex.assert_trees_all_close(m1.apply(variables, x)[0], m2.apply(variables, x - 0.1)[0], atol=1e-5)


def test_bad_names_fail_with_the_valid_list():
  with pytest.raises(ValueError, match="small_resnet, resnet18"):
    models.build_model(model_cfg(name="resnet50"), 10)
  with pytest.raises(ValueError, match="none, basic, extended"):
    models.build_model(model_cfg(attention="se"), 10)


def _bn_leaves(tree, route):
  """{path: value} of the entries under a DualBatchNorm's `route` child."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(tree))
  return {k: v for k, v in flat.items() if route in k}


@pytest.mark.parametrize("name", ["small_resnet", "vgg16_bn"])
def test_auxiliary_batchnorm_is_a_second_set_of_every_bn(name):
  """aux_bn=True: every BatchNorm has a "main" and an "aux" twin (params and statistics), created
  at init whatever the route; the aux route trains only the aux statistics; the main route is the
  plain model's computation."""
  cfg = model_cfg(name=name, attention="extended")
  plain = models.build_model(cfg, num_classes=5)
  dual = models.build_model(cfg, num_classes=5, aux_bn=True)
  x = jax.random.uniform(jax.random.key(0), (4, 16, 16, 3))
  v_plain = plain.init(jax.random.key(1), x)
  v_dual = dual.init(jax.random.key(1), x)
  main, aux = _bn_leaves(v_dual["batch_stats"], "main"), _bn_leaves(v_dual["batch_stats"], "aux")
  n_plain = len(flax.traverse_util.flatten_dict(flax.core.unfreeze(v_plain["batch_stats"])))
  assert len(main) == len(aux) == n_plain > 0
  assert len(_bn_leaves(v_dual["params"], "aux")) == len(_bn_leaves(v_dual["params"], "main")) > 0
  # Training on the aux route moves the aux statistics only.
  _, new = dual.apply(v_dual, x, train=True, bn_route="aux", mutable=["batch_stats"])
  moved = lambda route: [not np.allclose(a, _bn_leaves(v_dual["batch_stats"], route)[k])
                         for k, a in _bn_leaves(new["batch_stats"], route).items()]
  assert all(moved("aux")) and not any(moved("main"))
  # The main route computes what the plain model computes with the same (main) variables.
  def to_plain(tree):
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(tree))
    rename = lambda p: p.replace("DualBatchNorm_", "BatchNorm_")  # Flax's automatic names.
    return flax.traverse_util.unflatten_dict(
        {tuple(rename(p) for p in k if p != "main"): v for k, v in flat.items() if "aux" not in k})
  as_plain = {c: to_plain(v_dual[c]) for c in ("params", "batch_stats")}
  chex.assert_trees_all_equal_structs(as_plain["params"], flax.core.unfreeze(v_plain["params"]))
  for train in (False, True):
    out_dual = dual.apply(v_dual, x, train=train, mutable=["batch_stats"])[0][0]
    out_plain = plain.apply(as_plain, x, train=train, mutable=["batch_stats"])[0][0]
    np.testing.assert_allclose(out_dual, out_plain, rtol=1e-5, atol=1e-5)
  aux_out = dual.apply(v_dual, x, train=True, bn_route="aux", mutable=["batch_stats"])[0][0]
  # Fresh aux = fresh main BN, so the aux route agrees at init; the routes differ once trained.
  np.testing.assert_allclose(aux_out, dual.apply(v_dual, x, train=True,
                                                 mutable=["batch_stats"])[0][0], rtol=1e-5,
                             atol=1e-5)


def test_aux_route_needs_aux_batchnorm():
  model = models.build_model(model_cfg(), num_classes=3)
  x = jnp.zeros((1, 8, 8, 1))
  variables = model.init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="aux_bn=True"):
    model.apply(variables, x, train=True, bn_route="aux", mutable=["batch_stats"])
  with pytest.raises(ValueError, match="bn_route"):
    models.build_model(model_cfg(), 3, aux_bn=True).apply(
        variables, x, bn_route="other")


@pytest.mark.parametrize("name", ["small_resnet", "resnet18"])
def test_resnet_without_batch_norm_has_no_statistics_and_a_biased_stem(name):
  """config.model.batch_norm=False (HFC's "without BN"): no BatchNorm module and no batch_stats;
  the stem convolution gets a bias (as VGG's without BN), every other BN a per-channel bias; the
  output in train mode equals the output in eval mode (nothing depends on the batch)."""
  cfg = model_cfg(batch_norm=False, name=name)
  model = models.build_model(cfg, num_classes=10)
  x = jax.random.uniform(jax.random.key(0), (3, 12, 12, 1))
  variables = model.init(jax.random.key(1), x)
  assert "batch_stats" not in variables
  assert "bias" in variables["params"]["stem"]["semantic"]["conv"]
  names = [k for k in jax.tree_util.tree_flatten_with_path(variables["params"])[0]]
  assert not any("BatchNorm" in jax.tree_util.keystr(path) for path, _ in names)
  assert any("ChannelBias" in jax.tree_util.keystr(path) for path, _ in names)
  train_out, _ = model.apply(variables, x, train=True)
  eval_out, _ = model.apply(variables, x, train=False)
  np.testing.assert_allclose(train_out, eval_out, rtol=1e-6, atol=1e-6)
  # One image alone gives the same logits as inside the batch (no batch statistics).
  single, _ = model.apply(variables, x[:1], train=True)
  np.testing.assert_allclose(single, train_out[:1], rtol=1e-5, atol=1e-5)
  with_bn = models.build_model(model_cfg(name=name), num_classes=10)
  assert "batch_stats" in with_bn.init(jax.random.key(1), x)


@pytest.mark.parametrize("name", ["vgg16", "vgg16_bn", "wrn", "preact_resnet18"])
def test_backbones_that_cannot_drop_batch_norm_refuse_it(name):
  with pytest.raises(ValueError, match="batch_norm=False"):
    models.build_model(model_cfg(batch_norm=False, name=name), num_classes=10)


def test_auxiliary_batch_norms_need_batch_norm():
  model = models.ResNet(stage_sizes=(1,), widths=(4,), batch_norm=False, aux_bn=True)
  with pytest.raises(ValueError, match="aux_bn"):
    model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))


@pytest.mark.parametrize("name", ["small_resnet", "wrn"])
def test_frozen_gate_keeps_the_forward_pass_and_changes_only_the_gradient(name):
  """`frozen_gate` (the attacks' BPDA surrogate): the same logits; the input gradient is that of
  the network with the gate's output held constant, so it differs from the exact one where the
  gate depends on the input, and equals the exact gradient of the network whose gate is replaced
  by that constant."""
  overrides = dict(attention="extended")
  if name == "wrn":
    overrides.update(name="wrn", wrn_depth=10, wrn_width=1)
  model = models.build_model(model_cfg(**overrides), num_classes=5)
  x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 1))
  variables = model.init(jax.random.key(1), x)
  # Random biases of the gate's layers: at init its hidden ReLUs can all be off (v = 0.5, a
  # gate without gradient), which would make the law hold trivially.
  params = flax.core.unfreeze(variables["params"])
  attention = params["stem"]["attention"]
  for i, layer in enumerate(("fc1", "fc2")):
    attention[layer]["bias"] = jax.random.normal(jax.random.key(7 + i),
                                                 attention[layer]["bias"].shape)
  variables = dict(variables, params=params)
  frozen = model.clone(frozen_gate=True)
  logits = lambda m, z: m.apply(variables, z, train=False)[0]  # noqa: E731
  chex.assert_trees_all_close(logits(frozen, x), logits(model, x), rtol=0, atol=0)
  loss = lambda m: jax.grad(lambda z: jnp.sum(logits(m, z)[:, 0]))(x)  # noqa: E731
  exact, surrogate = loss(model), loss(frozen)
  assert float(jnp.max(jnp.abs(exact - surrogate))) > 1e-6
  v = model.apply(variables, x, train=False)[1]

  def fixed_gate(z):  # The network with the gate's output replaced by the clean image's v.
    def gate(fn, args, kwargs, context):
      out = fn(*args, **kwargs)
      if isinstance(context.module, ChannelAttention) and context.method_name == "__call__":
        return args[0] * v[:, None, None, :], v
      return out
    with nn.intercept_methods(gate):
      return jnp.sum(logits(model, z)[:, 0])
  chex.assert_trees_all_close(jax.grad(fixed_gate)(x), surrogate, rtol=1e-5, atol=1e-6)
  # Without attention there is no gate: the same gradient.
  plain = models.build_model(model_cfg(attention="none"), num_classes=5)
  pv = plain.init(jax.random.key(1), x)
  g = lambda m: jax.grad(lambda z: jnp.sum(m.apply(pv, z, train=False)[0][:, 0]))(x)  # noqa
  chex.assert_trees_all_close(g(plain.clone(frozen_gate=True)), g(plain), rtol=0, atol=0)
