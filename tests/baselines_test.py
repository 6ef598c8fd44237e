"""The baseline augmentation methods' common contract (registry, validation, config) and the
helpers the per-method files (tests/augment_<method>_test.py) use to check views.

Each per-method file checks its method's laws; `assert_views_contract` checks what every method
owes the train step: shape (num_views, N, H, W, C) float32 and finite, the same views for the same
key, other views for another key, and the same views eagerly as under jit.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from freqrobust.augment import aps, base, registry

EXPECTED = {"gaussian", "augmix", "apr_s", "apr_p", "apr_sp", "prime", "afa", "hybrid_s",
            "hybrid_p", "hybrid_ps", "fourier_basis", "pgd_at", "fgsm_rs"}


def images(seed: int, shape=(4, 8, 8, 3)) -> jax.Array:
  """Uniform test images (drawn flat: a multi-axis threefry draw takes seconds to compile)."""
  size = int(np.prod(shape))
  return jax.random.uniform(jax.random.key(seed), (size,), jnp.float32).reshape(shape)


def _matching_images(a: np.ndarray, b: np.ndarray, atol: float) -> np.ndarray:
  """(V, N) bool: which images agree to atol."""
  return np.all(np.abs(a - b) <= atol, axis=(2, 3, 4))


def assert_views_contract(method: base.Method, batch: jax.Array, labels: jax.Array,
                          forward=None, eager: bool = True, atol: float = 1e-5,
                          vmap_batches: jax.Array | None = None, jit: bool = True):
  """Checks the views' contract and returns (views, aux) of key 0 (jitted).

  Eager and jitted runs may round differently (fused multiply-adds) and the Pillow-style ops floor
  to uint8 levels, so a rounding tie can move one image; all but at most one image must agree.
  With `vmap_batches` (B, N, H, W, C), also checks that views vmapped over batches and keys give
  each batch's own views. With jit=False every call is eager (for a method whose jitted glue is
  already checked through another method, to save a compile).
  """
  fn = jax.jit(method.views, static_argnums=3) if jit else method.views
  eager = eager and jit
  key0, key1 = jax.random.key(0), jax.random.key(1)
  views, aux = fn(key0, batch, labels, forward)
  again, aux_again = fn(key0, batch, labels, forward)
  other, _ = fn(key1, batch, labels, forward)
  n = batch.shape[0]
  assert views.shape == (method.num_views,) + batch.shape, views.shape
  assert views.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(views)))
  np.testing.assert_array_equal(np.asarray(views), np.asarray(again))
  for name, value in aux.items():
    assert value.shape[:1] == (n,) or value.shape[:2] == (method.num_views, n), (name, value.shape)
    np.testing.assert_array_equal(np.asarray(value), np.asarray(aux_again[name]))
  assert float(jnp.max(jnp.abs(views - other))) > 1e-3, "another key gave the same views"
  assert all(0 <= v < method.num_views for v in method.ce_views)
  if eager:
    eager_views, _ = method.views(key0, batch, labels, forward)
    match = _matching_images(np.asarray(views), np.asarray(eager_views), atol)
    assert match.sum() >= match.size - 1, f"eager and jit differ in {np.sum(~match)} images"
  if vmap_batches is not None:
    keys = jax.random.split(jax.random.key(3), vmap_batches.shape[0])
    mapped = jax.jit(jax.vmap(lambda k, x: method.views(k, x, labels, forward)[0]))(
        keys, vmap_batches)
    for i in range(vmap_batches.shape[0]):
      match = _matching_images(np.asarray(mapped[i]),
                               np.asarray(fn(keys[i], vmap_batches[i], labels, forward)[0]), atol)
      assert match.sum() >= match.size - 1, "vmapped views differ"
  return views, aux


def test_registry_names_and_classes():
  assert set(registry.BASELINES) == EXPECTED
  assert registry.METHODS == {"paper": aps.PaperMethod, **registry.BASELINES}
  for name, cls in registry.BASELINES.items():
    assert issubclass(cls, base.Method)
    assert cls.name == name
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    method = cls()
    hash(method)  # static under jit
    assert method.num_views >= 1 and method.ce_views
    assert all(v < method.num_views for v in method.aux_bn_views)
    assert cls.__doc__ and len(cls.__doc__) > 40
    assert cls.__module__ and len(__import__(cls.__module__, fromlist=["x"]).__doc__) > 300


def test_from_config_round_trip_and_unknown_fields():
  for cls in registry.BASELINES.values():
    method = cls()
    values = {f.name: getattr(method, f.name) for f in dataclasses.fields(cls)}
    assert cls.from_config(values) == method
    with pytest.raises(ValueError, match="Unknown config fields"):
      cls.from_config({"not_a_field": 1})


@pytest.mark.parametrize("name, field, value", [
    ("gaussian", "sigma", -0.1), ("gaussian", "clean_fraction", 1.5), ("gaussian", "sigmas", (-1,)),
    ("augmix", "width", 0), ("augmix", "depth", 0), ("augmix", "severity", 11.0),
    ("augmix", "alpha", 0.0), ("augmix", "pad", -1), ("augmix", "flip", 1),
    ("apr_sp", "pair_prob", 1.2), ("apr_s", "crop_fill", 2.0),
    ("prime", "diffeo_cutmax", 2), ("prime", "filter_size", 4), ("prime", "transforms", ("blur",)),
    ("prime", "color_t", -1.0), ("afa", "mean_str", 0.0), ("afa", "max_str", -1.0),
    ("afa", "ascent_steps", -1), ("hybrid_ps", "kernel_size", 4), ("hybrid_p", "sigma", 0.0),
    ("hybrid_s", "plus", "yes"), ("fourier_basis", "granularity", 0),
])
def test_invalid_fields_name_the_field(name, field, value):
  cls = registry.BASELINES[name]
  with pytest.raises(ValueError, match=f"{cls.__name__}.{field} must be"):
    cls(**{field: value})


def test_fields_are_coerced():
  method = registry.BASELINES["augmix"](width=np.int64(2), severity=3)
  assert type(method.width) is int and type(method.severity) is float
  assert registry.BASELINES["prime"](transforms="diffeo, color").transforms == ("diffeo", "color")
