"""Laws of APGD-T, Square, FAB-T and the AutoAttack ensemble on tiny models (few steps/queries)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from freqrobust import attacks
from freqrobust.attacks import autopgd
from freqrobust.attacks.fab import _proj_l2, _proj_linf
from freqrobust.attacks.square import eta, p_selection, side


def _linear(d, k=10, seed=0, scale=1.0):
  w = jnp.asarray(np.random.default_rng(seed).normal(size=(d, k)).astype(np.float32)) * scale
  return lambda x: x.reshape(x.shape[0], -1) @ w


def _data(n, shape=(4, 4, 3), seed=1):
  return jnp.asarray(np.random.default_rng(seed).uniform(0.2, 0.8, (n,) + shape).astype(np.float32))


def _accuracy(f, x, y):
  return float(jnp.mean(jnp.argmax(f(x), -1) == y))


def _quantised(seed=0):
  """A linear model on the input rounded to multiples of 1/8 behind a stop_gradient: every input
  gradient is exactly zero."""
  base = _linear(4 * 4 * 3, seed=seed, scale=0.5)
  return lambda x: base(jax.lax.stop_gradient(jnp.round(x * 8.0) / 8.0))


def _quantised_data(n, seed=1):
  """Pixels 0.5 + k / 8 + u, k in {-2..2}, |u| <= 0.02: a sign perturbation of 1/8 moves every
  quantised pixel by one level."""
  rng = np.random.default_rng(seed)
  x = 0.5 + rng.integers(-2, 3, (n, 4, 4, 3)) / 8.0 + rng.uniform(-0.02, 0.02, (n, 4, 4, 3))
  return jnp.asarray(x.astype(np.float32))


def test_square_breaks_a_model_with_zero_gradients_that_pgd_cannot():
  f = _quantised()
  x = _quantised_data(16)
  y = jnp.argmax(f(x), -1)
  eps = 0.125
  _, _, grad = attacks.fgsm_pgd.loss_and_grad(f, x, y, "ce")
  assert float(jnp.max(jnp.abs(grad))) == 0.0
  pgd_acc = _accuracy(f, attacks.pgd(f, jax.random.key(0), x, y, eps=eps, steps=5), y)
  sq_acc = _accuracy(f, attacks.square(f, jax.random.key(0), x, y, eps=eps, queries=300), y)
  assert pgd_acc >= 0.5
  assert sq_acc <= 0.2 and sq_acc < pgd_acc - 0.3


def test_square_uses_no_gradient():
  base = _linear(75)

  @jax.custom_vjp
  def f(x):
    return base(x)

  def fwd(x):
    return base(x), None

  def bwd(_, g):
    raise AssertionError("Square differentiated the model.")

  f.defvjp(fwd, bwd)
  x = _data(8, shape=(5, 5, 3))
  y = jnp.argmax(base(x), -1)
  for norm, eps in (("linf", 0.05), ("l2", 0.3)):
    a = attacks.square(f, jax.random.key(3), x, y, eps=eps, norm=norm, queries=20)
    b = attacks.square(base, jax.random.key(3), x, y, eps=eps, norm=norm, queries=20)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("norm,eps", [("linf", 0.05), ("l2", 0.5)])
def test_square_stays_in_the_ball_and_queries_only_correct_examples(norm, eps):
  x = _data(12, shape=(5, 5, 3)) if norm == "l2" else _data(12)
  f = _linear(x[0].size)
  y = jnp.argmax(f(x), -1).at[0].set((jnp.argmax(f(x[:1]), -1)[0] + 1) % 10)  # 0 is wrong.
  adv, count = attacks.square(f, jax.random.key(0), x, y, eps=eps, norm=norm, queries=40,
                              return_queries=True)
  assert bool(jnp.all(attacks.in_ball(adv, x, eps, norm)))
  broken = np.asarray(jnp.argmax(f(adv), -1) != y)
  count = np.asarray(count)
  assert count[0] == 0 and np.array_equal(np.asarray(adv[0]), np.asarray(x[0]))
  assert broken[1:].any() and (~broken[1:]).any()
  # The still-correct examples used every query (+1 for the start); broken ones stopped.
  assert np.all(count[1:][~broken[1:]] == 41)
  assert np.all(count[1:][broken[1:]] <= 41)
  # Unbroken examples get the clean image back.
  np.testing.assert_array_equal(np.asarray(adv)[1:][~broken[1:]], np.asarray(x)[1:][~broken[1:]])


def test_square_schedule_and_side():
  p = [p_selection(0.8, i, 5000) for i in (0, 10, 11, 50, 51, 200, 201, 8000, 8001)]
  assert p == [0.8, 0.8, 0.4, 0.4, 0.2, 0.2, 0.1, 0.8 / 256, 0.8 / 512]
  assert p_selection(0.8, 6, 5000, rescale=True) == 0.8 / 2  # int(6 / 5000 * 1e4)
  assert side(0.8, 32, 32, "linf") == 29  # round(sqrt(0.8 * 1024)) = round(28.6)
  assert side(0.4, 32, 32, "l2") == 21  # round(20.2) = 20, made odd
  assert side(0.8 / 512, 32, 32, "linf") == 1
  assert side(0.8 / 512, 32, 32, "l2") == 3
  e = eta(5)
  assert abs(np.sum(e * e) - 1) < 1e-9 and np.all(e[:2] > 0) and np.all(e[2:] < 0)


def _decoy_model(eps):
  """Class 0 true; class 1 the 2nd logit (gap 2) on direction v, unreachable (eps ||v||_1 = 1);
  class 2 the 3rd (gap 12) on -20 v, reachable; the cross-entropy's gradient points to class 1
  everywhere near the clean image."""
  d = 64
  v = jnp.asarray(np.where(np.arange(d) % 2 == 0, 1.0, -1.0).astype(np.float32)) / (eps * d)
  bias = jnp.asarray([0.0, -2.0, -12.0] + [-100.0] * 7, jnp.float32)

  def f(x):
    s = (x.reshape(x.shape[0], -1) - 0.5) @ v
    z = jnp.zeros((x.shape[0], 10)).at[:, 1].set(s).at[:, 2].set(-20.0 * s)
    return z + bias
  return f


def test_apgd_t_is_stronger_than_apgd_ce_when_the_untargeted_direction_is_wrong():
  eps = 0.05
  f = _decoy_model(eps)
  x = jnp.full((6, 8, 8, 1), 0.5, jnp.float32) + jnp.asarray(
      np.random.default_rng(0).uniform(-1e-3, 1e-3, (6, 8, 8, 1)).astype(np.float32))
  y = jnp.zeros((6,), jnp.int32)
  assert _accuracy(f, x, y) == 1.0
  ce = attacks.apgd(f, jax.random.key(0), x, y, eps=eps, steps=10)
  t = attacks.apgd(f, jax.random.key(0), x, y, eps=eps, steps=10, loss="dlr_targeted",
                   target_classes=2)
  assert _accuracy(f, ce, y) == 1.0
  assert _accuracy(f, t, y) == 0.0
  assert bool(jnp.all(attacks.in_ball(t, x, eps, "linf")))


def test_apgd_t_compiles_once_for_every_target():
  f = _linear(48)
  x = _data(4)
  y = jnp.argmax(f(x), -1)
  before = autopgd._apgd_t_jit._cache_size()
  adv = attacks.apgd(f, jax.random.key(0), x, y, eps=1e-4, steps=3, loss="dlr_targeted",
                     target_classes=9)
  assert autopgd._apgd_t_jit._cache_size() == before + 1
  assert _accuracy(f, adv, y) == 1.0  # eps tiny: every target ran, nothing broken.
  with pytest.raises(ValueError, match="target_classes"):
    attacks.apgd(f, jax.random.key(0), x, y, eps=0.1, steps=3, loss="dlr_targeted",
                 target_classes=10)


def test_targeted_dlr_loss():
  z = jnp.asarray([[5.0, 3.0, 2.0, 1.0, 0.0]])
  # -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2): y = 0, t = 2.
  want = -(5.0 - 2.0) / (5.0 - 0.5 * (2.0 + 1.0) + 1e-12)
  got = attacks.dlr_targeted(z, jnp.asarray([0]), jnp.asarray([2]))
  np.testing.assert_allclose(np.asarray(got), [want], rtol=1e-6)


def _box_reach(t, w, lam):
  """The largest <w, d> with |d_i| <= lam and t + d in [0, 1]."""
  lam = np.reshape(np.broadcast_to(lam, t.shape[:1]), (-1, 1))
  lo, hi = np.maximum(-lam, -t), np.minimum(lam, 1 - t)
  return np.sum(np.maximum(w * lo, w * hi), axis=1)


def test_fab_linf_projection_is_the_smallest_step_onto_the_hyperplane():
  rng = np.random.default_rng(0)
  t = rng.uniform(0, 1, (16, 30)).astype(np.float32)
  w = rng.normal(size=(16, 30)).astype(np.float32)
  b = (np.sum(w * t, 1) + rng.uniform(0.2, 2.0, 16)).astype(np.float32)  # above: feasible ones
  d = np.asarray(_proj_linf(jnp.asarray(t), jnp.asarray(w), jnp.asarray(b)))
  lam = np.max(np.abs(d), axis=1)
  need = b - np.sum(w * t, 1)
  feasible = _box_reach(t, w, 10.0) >= need
  assert feasible.sum() >= 8
  f = feasible
  np.testing.assert_allclose(np.sum(w * (t + d), 1)[f], b[f], atol=1e-3)
  assert np.all((t + d)[f] >= -1e-6) and np.all((t + d)[f] <= 1 + 1e-6)
  assert np.all(_box_reach(t, w, lam * 0.99)[f] < need[f])


def test_fab_l2_projection_reaches_the_hyperplane_inside_the_box():
  rng = np.random.default_rng(1)
  t = rng.uniform(0.3, 0.7, (8, 30)).astype(np.float32)
  w = rng.normal(size=(8, 30)).astype(np.float32)
  b = (np.sum(w * t, 1) + rng.uniform(-0.5, 0.5, 8)).astype(np.float32)
  d = np.asarray(_proj_l2(jnp.asarray(t), jnp.asarray(w), jnp.asarray(b)))
  np.testing.assert_allclose(np.sum(w * (t + d), 1), b, atol=1e-3)
  assert np.all(t + d >= -1e-6) and np.all(t + d <= 1 + 1e-6)
  # Away from the box's faces the L2 projection is the orthogonal one.
  orth = (b - np.sum(w * t, 1))[:, None] * w / np.sum(w * w, 1, keepdims=True)
  inside = np.all((t + orth > 0) & (t + orth < 1), axis=1)
  np.testing.assert_allclose(d[inside], orth[inside], atol=1e-4)


@pytest.mark.parametrize("norm,eps", [("linf", 0.05), ("l2", 0.4)])
def test_fab_t_finds_boundary_points_inside_the_ball(norm, eps):
  f = _linear(48)
  x = _data(10)
  y = jnp.argmax(f(x), -1)
  adv = attacks.fab(f, jax.random.key(0), x, y, eps=eps, norm=norm, steps=10, target_classes=3)
  assert bool(jnp.all(attacks.in_ball(adv, x, eps, norm)))
  broken = np.asarray(jnp.argmax(f(adv), -1) != y)
  assert 0 < broken.sum() < 10  # some broken, some not
  np.testing.assert_array_equal(np.asarray(adv)[~broken], np.asarray(x)[~broken])
  # FAB is a minimum-norm attack: on a linear model it is at least as strong as APGD-CE.
  ce = attacks.apgd(f, jax.random.key(0), x, y, eps=eps, norm=norm, steps=10)
  assert broken.sum() >= int(np.sum(np.asarray(jnp.argmax(f(ce), -1) != y)))


def test_autoattack_robust_set_is_inside_every_attack_and_adversarials_are_real():
  f = _linear(48)
  x = _data(20)
  y = jnp.argmax(f(x), -1).at[:2].set(jnp.asarray([3, 4]))  # some wrong when clean
  eps = 0.04
  out = attacks.autoattack(f, jax.random.key(0), x, y, eps=eps, steps=5, queries=30,
                           batch_size=7)
  assert out["attacks"] == ("apgd-ce", "apgd-t", "fab-t", "square")
  robust, clean = out["robust"], out["clean"]
  names = list(out["per_attack"])
  both = clean.copy()
  for name in names:
    per = out["per_attack"][name]
    assert np.all(robust <= per)  # robust implies survived this attack
    assert np.all(~per <= both)   # an attack only ran on points still robust
    both &= per
  np.testing.assert_array_equal(robust, both)
  assert 0 < robust.sum() < clean.sum()
  adv = jnp.asarray(out["adversarial"])
  assert bool(jnp.all(attacks.in_ball(adv, x, eps, "linf")))
  broken = clean & ~robust
  assert np.all(np.asarray(jnp.argmax(f(adv), -1) != y)[broken])
  np.testing.assert_array_equal(out["adversarial"][robust], np.asarray(x)[robust])
  acc = out["accuracy"]
  assert acc["clean"] == clean.mean() and acc["square"] == robust.mean()
  assert out["square_flag"] is False


def test_autoattack_square_flag_on_a_masked_model():
  f = _quantised()
  x = _quantised_data(16)
  y = jnp.argmax(f(x), -1)
  out = attacks.autoattack(f, jax.random.key(0), x, y, eps=0.125, steps=4, queries=300,
                           target_classes=2)
  acc = out["accuracy"]
  assert acc["square"] < acc["fab-t"] - 0.002
  assert out["square_flag"] is True
  fast = attacks.autoattack(f, jax.random.key(0), x, y, eps=0.125, version="fast", steps=4)
  assert fast["attacks"] == ("apgd-ce", "apgd-dlr") and fast["square_flag"] is None
  with pytest.raises(ValueError, match="version"):
    attacks.autoattack(f, jax.random.key(0), x, y, eps=0.1, version="plus")
