"""Laws of AugMix (freqrobust/augment/augmix.py) and of the shared Pillow-style ops (ops.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageOps

from baselines_test import assert_views_contract, images
from freqrobust.augment import augmix, ops

_OP = jax.jit(ops.augmix_op)
# The settings and shapes of test_views_contract_and_clean_view's eager call (3 images, 2 draws
# each), so that the compiled batch function is shared.
_SETTINGS = dict(severity=3.0, width=3, depth=-1, alpha=1.0)


def _mix(keys, batch):
  return augmix.augment_and_mix_batch(keys, batch, **_SETTINGS)


def _pillow(img: Image.Image, name: str, level: float, sign: float) -> Image.Image:
  """google-research/augmix augmentations.py with the level already drawn."""
  size = img.size[0]
  if name == "autocontrast":
    return ImageOps.autocontrast(img)
  if name == "equalize":
    return ImageOps.equalize(img)
  if name == "posterize":
    return ImageOps.posterize(img, 4 - int(level * 4 / 10))
  if name == "rotate":
    return img.rotate(int(level * 30 / 10) * sign, resample=Image.BILINEAR)
  if name == "solarize":
    return ImageOps.solarize(img, 256 - int(level * 256 / 10))
  affine = {"shear_x": (1, level * 0.3 / 10 * sign, 0, 0, 1, 0),
            "shear_y": (1, 0, 0, level * 0.3 / 10 * sign, 1, 0),
            "translate_x": (1, 0, int(level * (size / 3) / 10) * sign, 0, 1, 0),
            "translate_y": (1, 0, 0, 0, 1, int(level * (size / 3) / 10) * sign)}[name]
  return img.transform(img.size, Image.AFFINE, affine, resample=Image.BILINEAR)


def test_ops_are_the_non_test_corruption_list():
  assert ops.AUGMIX_OPS == ("autocontrast", "equalize", "posterize", "rotate", "solarize",
                            "shear_x", "shear_y", "translate_x", "translate_y")
  assert not {"color", "contrast", "brightness", "sharpness"} & set(ops.AUGMIX_OPS)


@pytest.mark.parametrize("op_index", range(len(ops.AUGMIX_OPS)))
def test_op_matches_pillow(op_index):
  name = ops.AUGMIX_OPS[op_index]
  rng = np.random.default_rng(op_index)
  yy, xx = np.mgrid[0:16, 0:16]
  smooth = np.stack([xx * 7 + 20, yy * 9 + 10, (xx + yy) * 5 + 40], -1).astype(np.uint8)
  for arr in (rng.integers(0, 256, (16, 16, 3)).astype(np.uint8), smooth):
    for level, sign in ((0.7, 1.0), (2.9, -1.0), (9.5, 1.0)):
      expected = np.asarray(_pillow(Image.fromarray(arr), name, level, sign)).astype(int)
      got = np.asarray(_OP(jnp.asarray(arr / 255.0, jnp.float32), op_index, level, sign))
      got_levels = np.round(got * 255).astype(int)
      np.testing.assert_allclose(got * 255, got_levels, atol=1e-3)  # uint8 levels
      diff = np.abs(got_levels - expected)
      if name in ("equalize", "posterize", "solarize", "translate_x", "translate_y"):
        np.testing.assert_array_equal(got_levels, expected)
      else:  # Pillow rounds in double: a level can land one lower there.
        assert diff.max() <= 1 and diff.mean() < 0.2, (name, diff.max(), diff.mean())


def test_op_sampling_follows_the_reference():
  u = jnp.asarray(np.random.default_rng(0).uniform(size=(20000, 3)), jnp.float32)
  op, level, sign = jax.vmap(lambda v: ops.sample_augmix_op(v, 3.0))(u)
  counts = np.bincount(np.asarray(op), minlength=9) / 20000
  np.testing.assert_allclose(counts, 1 / 9, atol=0.015)
  assert float(level.min()) >= 0.1 and float(level.max()) <= 3.0
  np.testing.assert_allclose(float(level.mean()), 1.55, atol=0.03)
  np.testing.assert_allclose(float(jnp.mean(sign > 0)), 0.5, atol=0.02)


def test_mixture_is_a_convex_combination_of_chains_and_image():
  batch = images(1, (6, 8, 8, 3))
  mixed, chains, w, m = _mix(jax.random.split(jax.random.key(0), 6), batch)
  assert chains.shape == (6, 3, 8, 8, 3)
  for n in range(6):
    assert bool(jnp.all(w[n] >= 0)) and abs(float(w[n].sum()) - 1) < 1e-5
    assert 0 <= float(m[n]) <= 1
    np.testing.assert_allclose(
        mixed[n], (1 - m[n]) * batch[n] + m[n] * jnp.tensordot(w[n], chains[n], 1), atol=1e-6)
  # Each chain went through at least one op, so it is on the uint8 grid.
  np.testing.assert_allclose(chains * 255, jnp.round(chains * 255), atol=2e-3)
  lo = jnp.minimum(batch, chains.min(1))
  hi = jnp.maximum(batch, chains.max(1))
  assert bool(jnp.all((mixed >= lo - 1e-6) & (mixed <= hi + 1e-6)))


def test_linear_setup_mixture_weights():
  """With the image fixed, the mixture is linear in (w, m): mean w = 1/3, mean m = 1/2."""
  keys = jax.random.split(jax.random.key(4), 3000)
  u_len = 3 * (1 + 9) + 3 + 1
  u = jax.vmap(lambda k: jax.random.uniform(k, (u_len,)))(keys)
  e = -jnp.log1p(-u[:, -4:-1])
  w, m = e / e.sum(1, keepdims=True), u[:, -1]
  np.testing.assert_allclose(np.asarray(w.mean(0)), 1 / 3, atol=0.02)  # Dirichlet(1, 1, 1)
  np.testing.assert_allclose(float(jnp.var(w[:, 0])), 1 / 18, atol=0.006)
  np.testing.assert_allclose(float(m.mean()), 0.5, atol=0.02)  # Beta(1, 1)
  # The same draws as augment_and_mix's: its w and m are these functions of its uniforms.
  _, _, w6, m6 = _mix(keys[:6], images(0, (6, 8, 8, 3)))
  np.testing.assert_allclose(w6, w[:6], atol=1e-6)
  np.testing.assert_allclose(m6, m[:6], atol=1e-6)


def test_jsd_zero_for_identical_predictions_positive_otherwise():
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=(5, 10)), jnp.float32)
  same = jnp.stack([logits] * 3)
  assert abs(float(ops.jsd_consistency(same))) < 1e-6
  different = same.at[1].add(jnp.asarray(rng.normal(size=(5, 10)), jnp.float32))
  value = float(ops.jsd_consistency(different))
  assert value > 1e-3
  # torch: sum_v F.kl_div(log clamp(M), p_v, 'batchmean') / 3.
  p = np.asarray(jax.nn.softmax(different, -1), np.float64)
  log_m = np.log(np.clip(p.mean(0), 1e-7, 1))
  expected = sum(np.sum(p[v] * (np.log(p[v]) - log_m)) / 5 for v in range(3)) / 3
  np.testing.assert_allclose(value, expected, rtol=1e-4)
  terms = augmix.AugMix().loss_terms(different, None, jnp.zeros(5, jnp.int32), {}, None)
  np.testing.assert_allclose(float(terms["jsd"]), 12 * value, rtol=1e-6)


def test_views_contract_and_clean_view():
  method = augmix.AugMix(pad=0, flip=False)
  assert (method.num_views, method.ce_views) == (3, (0,))
  batch = images(2, (3, 8, 8, 3))
  views, _ = assert_views_contract(method, batch, jnp.zeros(3, jnp.int32))
  np.testing.assert_array_equal(views[0], batch)  # view 0: the clean (here uncropped) image
  # Views 1 and 2 are two independent AugMix draws.
  assert float(jnp.abs(views[1] - views[2]).max()) > 1e-3
