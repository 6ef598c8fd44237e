"""Laws of the attacks (freqrobust/attacks): FGSM's exact step and the L2 closed form on linear
models, the ball and [0, 1], eps = 0, monotonicity in eps, restarts, APGD vs PGD, the DLR loss,
APGD's checkpoints, and the evaluation's sanity checks. Tiny shapes (8x8x1, 16 examples); no
exact float comparison across different programs (margins instead)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from freqrobust import attacks
from freqrobust.attacks import autopgd as apgd_lib, ball, losses
from freqrobust.attacks import evaluation as attack_eval, runner

N, SHAPE, K = 16, (8, 8, 1), 10
D = int(np.prod(SHAPE))
_rng = np.random.default_rng(0)
W_LIN = jnp.asarray(_rng.standard_normal((D, K)) / np.sqrt(D), jnp.float32)
B_LIN = jnp.asarray(0.1 * _rng.standard_normal(K), jnp.float32)
W1 = jnp.asarray(_rng.standard_normal((D, 32)) * np.sqrt(2.0 / D), jnp.float32)
B1 = jnp.asarray(0.1 * _rng.standard_normal(32), jnp.float32)
W2 = jnp.asarray(_rng.standard_normal((32, K)) * np.sqrt(2.0 / 32), jnp.float32)


def linear(x):
  return x.reshape(x.shape[0], -1) @ W_LIN + B_LIN


def mlp(x):
  """A fixed small nonlinear model (deterministic weights)."""
  h = jax.nn.relu(x.reshape(x.shape[0], -1) @ W1 + B1)
  return 4.0 * (h @ W2)


def masked(x):
  """Gradient masking: the input is quantised, so every input gradient is 0."""
  return mlp(jax.lax.stop_gradient(jnp.round(x * 4.0) / 4.0))


def images(seed=1, lo=0.0, hi=1.0, n=N):
  x = jax.random.uniform(jax.random.key(seed), (n * D,), jnp.float32, lo, hi)
  return x.reshape((n,) + SHAPE)


def predictions(fn, x):
  return jnp.argmax(fn(x), axis=-1).astype(jnp.int32)


def accuracy(fn, x, y):
  return float(jnp.mean(jnp.argmax(fn(x), -1) == y))


def test_fgsm_linf_on_a_linear_model_is_eps_sign_grad():
  x = images(lo=0.3, hi=0.7)  # Interior: no [0, 1] clipping.
  y = predictions(linear, x)
  eps = 0.05
  adv = attacks.fgsm(linear, x, y, eps=eps, norm="linf")
  grad = jax.grad(lambda z: jnp.sum(losses.cross_entropy(linear(z), y)))(x)
  assert bool(jnp.all(grad != 0))
  np.testing.assert_allclose(np.asarray(adv - x), np.asarray(eps * jnp.sign(grad)), atol=1e-6)


@pytest.mark.parametrize("classes", [2, K])
def test_l2_attacks_reach_the_linear_closed_form(classes):
  """Linear margin z_j - z_y = m_j + (w_j - w_y).d: over ||d|| <= eps its maximum for the
  runner-up j is m_j + eps ||w_j - w_y||, at d = eps (w_j - w_y) / ||w_j - w_y||."""
  w, b = W_LIN[:, :classes], B_LIN[:classes]
  fn = lambda z: z.reshape(z.shape[0], -1) @ w + b
  x = images(lo=0.4, hi=0.6)
  y = predictions(fn, x)
  eps = 0.05
  logits = fn(x)
  j = jnp.argmax(jnp.where(jax.nn.one_hot(y, classes, dtype=bool), -jnp.inf, logits), -1)
  diff = (w[:, j] - w[:, y]).T  # (N, D)
  optimum_j = losses.margin(logits, y) + eps * jnp.linalg.norm(diff, axis=-1)
  # The global optimum over every class j (the max of linear margins).
  all_diff = w[None, :, :] - jnp.take_along_axis(w.T[None], y[:, None, None], axis=1
                                                 ).transpose(0, 2, 1)
  true = jnp.take_along_axis(logits, y[:, None], axis=1)
  best = jnp.max(jnp.where(jax.nn.one_hot(y, classes, dtype=bool), -jnp.inf,
                           logits - true + eps * jnp.linalg.norm(all_diff, axis=1)), -1)
  for adv in (attacks.pgd(fn, jax.random.key(0), x, y, eps=eps, norm="l2", steps=20,
                          loss="margin", random_start=False),
              attacks.fgsm(fn, x, y, eps=eps, norm="l2", loss="margin")):
    got = losses.margin(fn(adv), y)
    assert bool(jnp.all(got >= optimum_j - 1e-4)), (got, optimum_j)
    assert bool(jnp.all(got <= best + 1e-4))
    np.testing.assert_allclose(np.asarray(ball.norms(adv - x, "l2")), eps, rtol=1e-4)
    if classes == 2:  # The unique optimum itself.
      want = x + eps * (diff / jnp.linalg.norm(diff, axis=-1, keepdims=True)).reshape(x.shape)
      np.testing.assert_allclose(np.asarray(adv), np.asarray(want), atol=1e-5)


def _all_attacks(fn, x, y, eps, norm):
  key = jax.random.key(3)
  return {
      "fgsm": attacks.fgsm(fn, x, y, eps=eps, norm=norm),
      "pgd": attacks.pgd(fn, key, x, y, eps=eps, norm=norm, steps=5, restarts=2),
      "pgd_margin": attacks.pgd(fn, key, x, y, eps=eps, norm=norm, steps=5, loss="margin"),
      "apgd_ce": attacks.apgd(fn, key, x, y, eps=eps, norm=norm, steps=10),
      "apgd_dlr": attacks.apgd(fn, key, x, y, eps=eps, norm=norm, steps=10, loss="dlr"),
  }


@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 1.0)])
def test_every_attack_stays_in_the_ball_and_range(norm, eps):
  x = images()  # Uniform on [0, 1]: pixels near both bounds.
  y = predictions(mlp, x)
  for name, adv in _all_attacks(mlp, x, y, eps, norm).items():
    assert adv.shape == x.shape and adv.dtype == jnp.float32, name
    assert bool(jnp.all((adv >= 0) & (adv <= 1))), name
    assert bool(jnp.all(ball.in_ball(adv, x, eps, norm, atol=1e-6))), (
        name, float(jnp.max(ball.norms(adv - x, norm))))
    assert accuracy(mlp, adv, y) < 1.0, name  # They do attack.
  # Eps = 0 returns the images exactly (the same compiled attacks: eps is traced).
  for name, adv in _all_attacks(mlp, x, y, 0.0, norm).items():
    np.testing.assert_array_equal(np.asarray(adv), np.asarray(x), err_msg=name)


def test_accuracy_is_non_increasing_in_eps():
  x = images(n=2 * N)
  y = predictions(mlp, x)
  accs = [accuracy(mlp, attacks.pgd(mlp, jax.random.key(0), x, y, eps=e, steps=10), y)
          for e in (0.0, 0.02, 0.04, 0.06, 0.08, 0.12, 0.3)]
  assert accs[0] == 1.0 and accs[-1] == 0.0, accs
  assert all(b <= a for a, b in zip(accs, accs[1:])), accs
  assert accs[2] < 1.0  # Not trivially flat.


def test_more_restarts_are_never_weaker_per_example():
  x = images(seed=5, n=2 * N)
  y = predictions(mlp, x)
  eps = 0.015  # Breaks some examples only.
  one = attacks.pgd(mlp, jax.random.key(7), x, y, eps=eps, steps=3, restarts=1)
  three = attacks.pgd(mlp, jax.random.key(7), x, y, eps=eps, steps=3, restarts=3)
  m1, m3 = losses.margin(mlp(one), y), losses.margin(mlp(three), y)
  broken1 = np.asarray(m1 > 1e-4)  # Broken by a clear margin (no float-order ties).
  assert 0 < broken1.sum() < len(broken1), m1
  assert bool(np.all(np.asarray(m3)[broken1] > 0)), (m1, m3)
  assert np.sum(np.asarray(m3) > 0) >= broken1.sum()


def test_apgd_is_at_least_as_strong_as_pgd_with_the_same_budget():
  x = images(seed=9, n=2 * N)
  y = predictions(mlp, x)
  for eps in (0.02, 0.06, 0.1):
    p = accuracy(mlp, attacks.pgd(mlp, jax.random.key(0), x, y, eps=eps, steps=20), y)
    a = accuracy(mlp, attacks.apgd(mlp, jax.random.key(0), x, y, eps=eps, steps=20), y)
    assert a <= p, (eps, a, p)


def test_dlr_matches_its_formula_by_hand():
  z = jnp.asarray([[1.0, 3.0, 2.0, 0.0], [1.0, 3.0, 2.0, 0.0], [5.0, 1.0, 1.0, -2.0]])
  y = jnp.asarray([0, 1, 0])
  # Sorted: 3 > 2 > 1 > 0: z_pi1 - z_pi3 = 2. Label 0: -(1 - 3) / 2; label 1 (top): -(3 - 2) / 2.
  # Third row: z_pi1 - z_pi3 = 5 - 1 = 4, -(5 - 1) / 4.
  np.testing.assert_allclose(np.asarray(losses.dlr(z, y)), [1.0, -0.5, -1.0], rtol=1e-6)
  np.testing.assert_allclose(np.asarray(losses.margin(z, y)), [2.0, -1.0, -4.0])
  with pytest.raises(ValueError, match="3 classes"):
    losses.dlr(z[:, :2], y)


def test_apgd_checkpoints_follow_the_paper():
  """p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06) (in units of n)."""
  p = [0.0, 0.22]
  while p[-1] + max(p[-1] - p[-2] - 0.03, 0.06) <= 1.0:
    p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
  want = [int(round(100 * q)) - 1 for q in p[1:]]  # After iteration ceil(p_j n), 0-based.
  assert apgd_lib.checkpoints(100) == want == [21, 40, 56, 69, 79, 86, 92, 98]
  assert apgd_lib.checkpoint_schedule(100) == (22, 6, 3)


def test_evaluation_reports_and_passes_the_checks_on_an_honest_model():
  x = images(seed=11, n=20)
  y = predictions(mlp, x)
  ticks = []
  out = attacks.adversarial_accuracy(
      mlp, jax.random.key(0), x, y, norm="linf", eps_list=[0.02, 0.0, 0.3], steps=5,
      batch_size=8, large_eps=0.25, progress=lambda d, t: ticks.append((d, t)))
  assert out["n"] == 20 and out["clean_accuracy"] == 1.0
  assert out["accuracy"][0.0] == 1.0 and out["largest_eps_accuracy"] == 0.0
  assert out["accuracy"][0.02] <= out["fgsm_accuracy"] <= 1.0
  assert out["failed_checks"] == [], out
  assert out["max_perturbation"][0.02] <= 0.02 + 1e-6
  assert ticks[-1][0] == ticks[-1][1] and len(ticks) == ticks[-1][1]


def test_evaluation_flags_gradient_masking():
  x = images(seed=12, n=16)
  y = predictions(masked, x)
  out = attacks.adversarial_accuracy(masked, jax.random.key(0), x, y, norm="linf",
                                     eps_list=[0.05, 0.5], steps=3, batch_size=16,
                                     large_eps=0.5, large_eps_max=0.0)
  assert out["zero_gradient_examples"] == 16
  assert "no_zero_gradients" in out["failed_checks"]


def test_unbounded_check_runs_beside_the_curve_and_flags_an_unbreakable_model():
  """large_eps is attacked even when the curve stops below it; a model nothing can fool (a
  constant classifier) fails it; without large_eps the check is 'not run', never 'held'."""
  x = images(seed=13, n=12)
  y = predictions(mlp, x)
  out = attacks.adversarial_accuracy(mlp, jax.random.key(0), x, y, norm="linf",
                                     eps_list=[0.02], steps=5, batch_size=12, large_eps=1.0)
  assert out["large_eps"] == 1.0 and 1.0 not in out["accuracy"]
  assert out["large_eps_accuracy"] <= 0.05 and out["checks"]["large_eps"] is True
  out = attacks.adversarial_accuracy(mlp, jax.random.key(0), x, y, norm="linf",
                                     eps_list=[0.02], steps=5, batch_size=12)
  assert out["checks"]["large_eps"] is None and out["large_eps_accuracy"] is None
  # No transfer images given, no Square run, no surrogate.
  assert out["skipped_checks"] == ["large_eps", "transfer_weaker", "square_weaker",
                                   "surrogate_weaker"]
  assert "large_eps" not in out["failed_checks"]

  def constant(z):
    return jnp.zeros((z.shape[0], 10)).at[:, 3].set(1.0) + 0.0 * z.reshape(z.shape[0], -1)[:, :1]

  out = attacks.adversarial_accuracy(constant, jax.random.key(0), x, jnp.full((12,), 3),
                                     norm="l2", eps_list=[0.5], steps=3, batch_size=12,
                                     large_eps=float(np.sqrt(D)))
  assert out["large_eps_accuracy"] == 1.0
  assert {"large_eps", "no_zero_gradients"} <= set(out["failed_checks"])


def test_a_second_attack_without_checks_gives_per_example_results():
  """sanity_checks=False runs only the attack: the checks it skips are None; correct_main marks
  exactly the examples counted in the accuracy, in order, over a padded last batch."""
  x = images(seed=14, n=11)
  y = predictions(mlp, x)
  kw = dict(norm="linf", eps_list=[0.0, 0.03], main_eps=0.03, steps=4, batch_size=4)
  full = attacks.adversarial_accuracy(mlp, jax.random.key(5), x, y, **kw)
  bare = attacks.adversarial_accuracy(mlp, jax.random.key(5), x, y, sanity_checks=False,
                                      large_eps=1.0, **kw)
  assert bare["fgsm_accuracy"] is None and bare["large_eps"] is None
  assert set(bare["skipped_checks"]) == {"large_eps", "pgd_le_fgsm_le_clean", "restarts_stable",
                                         "noise_weaker", "no_zero_gradients",
                                         "transfer_weaker", "square_weaker",
                                         "surrogate_weaker"}
  assert bare["checks"]["monotone"] is True and bare["checks"]["in_ball"] is True
  for out in (full, bare):
    assert out["correct_main"].shape == (11,) and out["correct_main"].dtype == bool
    assert out["correct_main"].sum() == round(out["accuracy"][0.03] * 11)
  np.testing.assert_array_equal(full["correct_main"], bare["correct_main"])  # Same key, attack.
  key = runner.attack_key(jax.random.key(5), runner.Attack("pgd", 0.03, "ce", 4))
  x_adv = attacks.pgd(mlp, jax.random.fold_in(key, 0), x[:4], y[:4], eps=0.03, norm="linf",
                      steps=4)
  # Scored by the evaluation's own jitted scorer: one XLA program, so no near-tie can flip.
  np.testing.assert_array_equal(full["correct_main"][:4], np.asarray(runner._score(
      None, x_adv, y[:4], apply=runner.Unbound(mlp))))


def test_attacks_refuse_bad_arguments():
  x, y = images(), jnp.zeros((N,), jnp.int32)
  with pytest.raises(ValueError, match="norm"):
    attacks.pgd(mlp, jax.random.key(0), x, y, eps=0.1, norm="l1")
  with pytest.raises(ValueError, match="eps"):
    attacks.fgsm(mlp, x, y, eps=-0.1)
  with pytest.raises(ValueError, match="loss"):
    attacks.apgd(mlp, jax.random.key(0), x, y, eps=0.1, loss="margin")


@pytest.mark.parametrize("attack", ["pgd", "apgd"])
def test_unrolled_and_looped_steps_give_the_same_attack(attack):
  """`unroll` is a speed setting (XLA's CPU while-loop is slow; fgsm_pgd.CPU_UNROLL_MAX_STEPS):
  the unrolled steps and the `fori_loop` return the same adversarial images (up to float order:
  XLA may fuse the two differently, and a sign(gradient) within rounding of 0 may flip, so a few
  pixels are allowed to differ)."""
  x = images(3)
  y = predictions(mlp, x)
  key = jax.random.key(4)
  run = attacks.pgd if attack == "pgd" else attacks.apgd
  kwargs = dict(eps=0.1, norm="linf", steps=12)
  looped = run(mlp, key, x, y, unroll=False, **kwargs)
  unrolled = run(mlp, key, x, y, unroll=True, **kwargs)
  differ = np.abs(np.asarray(unrolled) - np.asarray(looped)) > 1e-5
  assert differ.mean() <= 0.01, differ.mean()
  assert bool(jnp.any(looped != x))  # The attack moved the images.
