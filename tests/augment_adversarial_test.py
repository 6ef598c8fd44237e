"""Adversarial training methods (freqrobust/augment/adversarial.py): views inside the ball and
[0, 1], the references' one-step and multi-step laws on a linear model, no gradient to the
parameters through the attack, BatchNorm running statistics untouched by the attack, the
composition with the paper's method, and a tiny CLI run."""
import functools
import json
import os
import subprocess
import sys

import flax
import ml_collections
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import baselines, default
from freqrobust import experiment, sharding, train
from freqrobust.attacks import ball
from freqrobust.augment import adversarial, aps, registry
from freqrobust.augment.paper import AugmentParams

import baselines_test
import workdirs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPE = (8, 8, 1)
D = int(np.prod(SHAPE))
_rng = np.random.default_rng(0)
W = jnp.asarray(_rng.standard_normal((D, 10)) / np.sqrt(D), jnp.float32)
W2 = W[:, :2]


def forward(x, bn="running"):
  """A fixed nonlinear model (bn ignored)."""
  del bn
  h = x.reshape(x.shape[0], -1)
  return 4.0 * jnp.tanh(h @ W) @ jnp.eye(10, dtype=jnp.float32)


def forward_binary(x, bn="running"):
  """A linear two-class model: the sign of the CE gradient is sign(w_other - w_y) everywhere."""
  del bn
  return x.reshape(x.shape[0], -1) @ W2


@pytest.mark.parametrize("method", [
    adversarial.PGDAT(pad=0, flip=False, steps=3),
    adversarial.PGDAT(norm="l2", eps=0.5, step_size=0.2, steps=2, pad=0, flip=False),
    adversarial.FGSMRS(pad=0, flip=False)])
def test_views_are_in_the_ball_and_range(method):
  batch = baselines_test.images(0, (6,) + SHAPE)
  labels = jnp.asarray([0, 1, 2, 3, 4, 5], jnp.int32)
  views, aux = baselines_test.assert_views_contract(method, batch, labels, forward, eager=False)
  adv = views[0]
  assert bool(jnp.all(ball.in_ball(adv, batch, method.eps, method._norm, atol=1e-6)))
  assert float(jnp.max(aux["perturbation"])) <= method.eps + 1e-5
  assert float(jnp.max(aux["perturbation"])) > 0.5 * method.eps  # They do perturb.
  assert set(method.step_metrics(None, aux, None)) == {"adv_perturbation"}


def test_with_crop_the_ball_is_around_the_cropped_image():
  method = adversarial.PGDAT(steps=2)  # pad 4 + flip (the default).
  batch = baselines_test.images(1, (4,) + SHAPE)
  views, aux = jax.jit(method.views, static_argnums=3)(jax.random.key(0), batch,
                                                       jnp.zeros(4, jnp.int32), forward)
  assert views.shape == (1,) + batch.shape
  assert float(jnp.max(aux["perturbation"])) <= method.eps + 1e-6
  assert bool(jnp.all((views >= 0) & (views <= 1)))


@pytest.mark.parametrize("method", [
    adversarial.FGSMRS(eps=0.05, alpha=0.1, pad=0, flip=False),  # alpha >= 2 eps
    adversarial.PGDAT(eps=0.05, step_size=0.025, steps=4, pad=0, flip=False)])  # 4 a >= 2 eps
def test_on_a_linear_model_the_attack_lands_on_the_corner(method):
  """With a constant gradient sign s and a total step >= 2 eps, from any random start the
  references' update ends at x + eps s (interior images: no [0, 1] clipping)."""
  x = 0.3 + 0.4 * baselines_test.images(2, (8,) + SHAPE)
  y = jnp.argmax(forward_binary(x), -1).astype(jnp.int32)
  views, _ = method.views(jax.random.key(0), x, y, forward_binary)
  s = jnp.sign(W2[:, 1] - W2[:, 0]).reshape(SHAPE)
  want = x + method.eps * jnp.where((y == 0)[:, None, None, None], s, -s)
  np.testing.assert_allclose(np.asarray(views[0]), np.asarray(want), atol=1e-6)


def test_no_gradient_flows_to_parameters_through_the_attack():
  method = adversarial.PGDAT(steps=2, pad=0, flip=False)
  x = baselines_test.images(3, (4,) + SHAPE)
  y = jnp.asarray([0, 1, 2, 3], jnp.int32)

  def through(w):  # A forward whose parameters are NOT stop_gradient'ed.
    fwd = lambda z, bn="running": jnp.tanh(z.reshape(z.shape[0], -1) @ w)
    return jnp.sum(method.views(jax.random.key(0), x, y, fwd)[0])

  grad = jax.grad(through)(W)
  assert float(jnp.max(jnp.abs(grad))) == 0.0


def test_fields_are_validated():
  for cls, field, value in ((adversarial.PGDAT, "eps", -0.1), (adversarial.PGDAT, "steps", 0),
                            (adversarial.PGDAT, "norm", "l1"), (adversarial.PGDAT, "bn", "aux"),
                            (adversarial.PGDAT, "step_size", -0.1),
                            (adversarial.PGDAT, "step_ratio", 0.0),
                            (adversarial.FGSMRS, "alpha", -0.1),
                            (adversarial.FGSMRS, "alpha_ratio", 0.0),
                            (adversarial.FGSMRS, "bn", 1)):
    with pytest.raises(ValueError, match=f"{cls.__name__}.{field} must be"):
      cls(**{field: value})
  assert registry.METHODS["pgd_at"] is adversarial.PGDAT
  assert registry.METHODS["fgsm_rs"] is adversarial.FGSMRS
  assert adversarial.FGSMRS().step == pytest.approx(1.25 * adversarial.FGSMRS().eps)
  with pytest.raises(ValueError, match="forward"):
    adversarial.PGDAT().views(jax.random.key(0), baselines_test.images(0, (2,) + SHAPE),
                              jnp.zeros(2, jnp.int32))


def test_the_step_and_alpha_follow_eps_unless_given():
  """Overriding eps alone keeps Madry's eps / 4 and Wong et al.'s 1.25 eps (defect: absolute
  defaults 0.025 and 0.125 made FGSM-RS at eps 8/255 plain FGSM)."""
  assert adversarial.PGDAT(eps=8 / 255).step == pytest.approx(2 / 255)
  assert adversarial.FGSMRS(eps=8 / 255).step == pytest.approx(10 / 255)
  assert adversarial.PGDAT(eps=0.3, step_size=0.01).step == pytest.approx(0.01)  # As given.
  assert adversarial.PGDAT(eps=0.2, step_ratio=0.1).step == pytest.approx(0.02)
  # Through a run's config, overriding only eps (the baselines' method_args hold every field):
  assert _tiny("pgd_at", eps=0.2).method_args.step_size == 0.0
  built = experiment.build_method(_tiny("fgsm_rs", eps=0.04, pad=0, flip=False))
  assert built.step == pytest.approx(0.05)
  # Behaviour: from the random start U(-eps, eps) a step of 1.25 eps leaves some coordinates
  # inside the ball; the old absolute 0.125 at eps 0.04 (> 3 eps) put all of them on the corner.
  x = 0.3 + 0.4 * baselines_test.images(2, (8,) + SHAPE)
  y = jnp.argmax(forward_binary(x), -1).astype(jnp.int32)
  views, _ = built.views(jax.random.key(0), x, y, forward_binary)
  corner = np.isclose(np.abs(np.asarray(views[0] - x)), 0.04, atol=1e-6)
  assert 0.5 < corner.mean() < 1.0


def test_alpha_beyond_twice_eps_is_refused_naming_the_field():
  with pytest.raises(ValueError, match=r"FGSMRS\.alpha=0\.125 exceeds 2 eps"):
    adversarial.FGSMRS(eps=8 / 255, alpha=0.125)
  with pytest.raises(ValueError, match=r"FGSMRS\.alpha_ratio=2\.5 exceeds 2 eps"):
    adversarial.FGSMRS(alpha_ratio=2.5)
  adversarial.FGSMRS(eps=0.05, alpha=0.1)  # 2 eps: allowed.
  from freqrobust.workdir import UserError
  with pytest.raises(UserError, match=r"method_args \(fgsm_rs\).*FGSMRS\.alpha=0\.125"):
    _tiny("fgsm_rs", eps=8 / 255, alpha=0.125)
    experiment.build_method(_tiny("fgsm_rs", eps=8 / 255, alpha=0.125))


def test_recorded_method_args_keep_their_meaning():
  """A run recorded before the step derived from eps: explicit numbers mean the same; a run that
  set eps but not the step trained with 0.025 / 0.125 and is declared stale (a revision)."""
  from freqrobust.augment import base
  old_pgd = {"eps": 0.1, "step_size": 0.025, "steps": 10, "random_start": True, "norm": "linf",
             "bn": "batch", "pad": 4, "flip": True, "crop_fill": 0.0}  # The old full defaults.
  assert adversarial.PGDAT.from_config(old_pgd).step == pytest.approx(0.025)
  old_fgsm = {"eps": 0.1, "alpha": 0.125, "bn": "batch", "pad": 4, "flip": True,
              "crop_fill": 0.0}
  assert adversarial.FGSMRS.from_config(old_fgsm).step == pytest.approx(0.125)
  for cls, args, stale in ((adversarial.PGDAT, old_pgd, False),
                           (adversarial.PGDAT, {"eps": 0.2}, True),
                           (adversarial.PGDAT, {}, False),  # eps 0.1: 0.025 = eps / 4.
                           (adversarial.FGSMRS, {"eps": 0.05}, True),
                           (adversarial.FGSMRS, old_fgsm, False)):
    config = {"method": cls.name, "method_args": args}
    notes = base.stale_notes(cls, {"method_args": args}, config)
    assert bool(notes) == stale, (cls, args, notes)
    # Runs of the current code record the revision: never stale.
    assert not base.stale_notes(cls, {"method_args": args, "method_revision": 1}, config)
  # The composition's adversarial_args are read the same way.
  assert adversarial._args_of({"method": "paper", "adversarial": "pgd_at",
                               "adversarial_args": {"eps": 0.2}}, "pgd_at") == {"eps": 0.2}


def _tiny(method: str, adversarial: str = "", **args):
  config = workdirs.tiny_config()
  config.adversarial = adversarial
  config.data.synthetic_size = 8
  config.data.synthetic_channels = 1
  config.model.small_widths = (4, 4, 4)
  config.model.attention = "none"
  config.method = method
  config.method_args = baselines._defaults(registry.METHODS[method])
  config.method_args.update(args)
  return experiment.resolve_config(config)


def _stats(tree):
  return flax.traverse_util.flatten_dict(flax.core.unfreeze(tree))


def test_attack_leaves_the_running_batch_statistics_alone(bn="batch"):
  """After a train step the running statistics are one BatchNorm update with the adversarial
  view's own statistics (as natural training on that view), whatever the attack's forward
  passes saw: recomputed here from the step's views."""
  exp = experiment.build(_tiny("pgd_at", steps=3, pad=0, flip=False, bn=bn), 64)
  state = exp.init_state(jax.random.key(0), sharding.Sharder(jax.devices()[:1]))
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (16, 8, 8, 1)).astype(np.uint8),
           "label": rng.integers(0, 10, 16).astype(np.int32)}
  key = jax.random.key(1)
  step = jax.jit(functools.partial(train.train_step, method=exp.method, schedule=exp.schedule))
  new_state, metrics = step(state, batch, key)
  assert np.isfinite(float(metrics["loss"]))
  assert 0 < float(metrics["adv_perturbation"]) <= 0.1 + 1e-6

  # The same views as the step (its forward, reproduced), then one training forward on them.
  frozen = {"params": state.params["model"], "batch_stats": state.batch_stats}

  def fwd(x, bn="running"):
    if bn == "running":
      return state.apply_fn(frozen, x, train=False)[0]
    (logits, _), _ = state.apply_fn(frozen, x, train=True, mutable=["batch_stats"])
    return logits

  @jax.jit
  def expected(images, labels):
    views, _ = exp.method.views(jax.random.fold_in(key, state.step), images, labels, fwd)
    return train._apply_views(state.apply_fn, state.params["model"], state.batch_stats,
                              views)[2]

  want = _stats(expected(batch["image"].astype(np.float32) / 255.0, batch["label"]))
  got, before = _stats(new_state.batch_stats), _stats(state.batch_stats)
  assert got.keys() == want.keys() and got
  for k in got:  # Margins, not float equality: the two programs may fuse differently.
    np.testing.assert_allclose(got[k], want[k], rtol=2e-3, atol=2e-4)
  moved = max(float(np.max(np.abs(got[k] - before[k]))) for k in got)
  assert moved > 1e-3  # The step's own forward did update them.


def test_composition_with_the_papers_method():
  paper = aps.PaperMethod(augment=AugmentParams(pad=0, suppress_prob=1.0))
  attack = adversarial.PGDAT(steps=2)
  method = adversarial.AdversarialComposition(method=paper, attack=attack)
  x = baselines_test.images(4, (6,) + SHAPE)
  y = jnp.asarray([0, 1, 2, 3, 4, 5], jnp.int32)
  key = jax.random.key(0)
  views, aux = method.views(key, x, y, forward)
  k_paper, k_attack = jax.random.split(key)
  paper_views, paper_aux = paper.views(k_paper, x, y)
  assert views.shape == (1,) + x.shape and method.attacked_views == (0,)
  # The paper's view attacked with the attack's key: what the paper-only composition did.
  np.testing.assert_array_equal(np.asarray(views[0]), np.asarray(
      attack.craft(k_attack, paper_views[0], y, forward)))
  assert bool(jnp.all(ball.in_ball(views[0], paper_views[0], 0.1, "linf", atol=1e-6)))
  assert float(jnp.max(jnp.abs(views[0] - paper_views[0]))) > 0.05
  for k, v in paper_aux.items():
    np.testing.assert_array_equal(np.asarray(aux[k]), np.asarray(v))
  assert method.init_params() == paper.init_params() and method.uses_attention
  assert "adv_perturbation" in method.step_metrics(None, aux, None)
  with pytest.raises(ValueError, match="attack"):
    adversarial.AdversarialComposition(attack=paper)
  with pytest.raises(ValueError, match="adversarial training already"):
    adversarial.AdversarialComposition(method=attack, attack=attack)


@pytest.mark.parametrize("name, attacked", [("augmix", (0,)), ("apr_p", (0, 1)),
                                            ("afa", (0,))])
def test_composition_attacks_every_ce_view_of_a_multi_view_method(name, attacked):
  """The CE views (but those on auxiliary BatchNorms) are attacked, each against its labels; the
  other views and the method's loss terms stay the method's own."""
  inner = registry.BASELINES[name]()
  method = adversarial.AdversarialComposition(method=inner, attack=adversarial.PGDAT(steps=2))
  assert method.attacked_views == attacked and method.num_views == inner.num_views
  assert (method.ce_views, method.aux_bn_views) == (inner.ce_views, inner.aux_bn_views)
  x = baselines_test.images(5, (6,) + SHAPE)
  y = jnp.asarray([0, 1, 2, 3, 4, 5], jnp.int32)
  key = jax.random.key(3)
  views, aux = method.views(key, x, y, forward)
  plain, _ = inner.views(jax.random.split(key)[0], x, y, forward)
  assert views.shape == plain.shape and aux["adv_perturbation"].shape == (len(attacked), 6)
  for v in range(inner.num_views):
    moved = float(jnp.max(jnp.abs(views[v] - plain[v])))
    assert (moved > 0.05) if v in attacked else (moved == 0.0), (v, moved)
    # In the ball around the view (APR-P's mixed view may leave [0, 1]: the attack clips it).
    assert bool(jnp.all(ball.in_ball(views[v], jnp.clip(plain[v], 0, 1), 0.1, "linf",
                                     atol=1e-6)))
  logits = jnp.zeros((inner.num_views, 6, 10))
  assert method.loss_terms(logits, None, y, aux, {}).keys() == \
      inner.loss_terms(logits, None, y, aux, {}).keys()


# The corruption report off (the config's field for it is being renamed: either spelling).
_NO_CORRUPTIONS = ("--config.evals.corruptions.at_end=false" if "evals" in default.get_config()
                   else "--config.corruptions.evaluate=false")


def test_cli_trains_pgd_at(tmp_path):
  env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
  out = subprocess.run(
      [sys.executable, "-m", "freqrobust.main", "--config=configs/baselines.py:pgd_at,cpu",
       f"--workdir={tmp_path}", "--config.data.dataset=synthetic",
       "--config.data.synthetic_size=8", "--config.data.synthetic_channels=1",
       "--config.data.synthetic_examples=32", "--config.model.small_widths=(4, 4, 4)",
       "--config.train.batch_size=16", "--config.train.num_epochs=1",
       "--config.train.max_steps=2", "--config.method_args.steps=2",
       "--config.eval.batch_size=16", _NO_CORRUPTIONS],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "method=pgd_at" in out.stdout
  with open(tmp_path / "results.json") as f:
    results = json.load(f)
  assert results["status"] == "finished" and results["method_choices"]["method"] == "pgd_at"


def test_the_paper_method_composes_with_adversarial_training_through_the_config():
  from configs import baselines
  from freqrobust import experiment
  from freqrobust.augment import adversarial as adversarial_lib
  from freqrobust.workdir import UserError
  config = experiment.resolve_config(baselines.get_config("paper_pgd_at,cpu"))
  method = experiment.build_method(config)
  assert isinstance(method, adversarial_lib.AdversarialComposition)
  assert isinstance(method.method, aps.PaperMethod)
  assert method.attack.eps == 0.1 and method.method.aps.enabled  # The paper's APS term kept.
  assert experiment.method_choices(config, method)["adversarial"] == "pgd_at"
  cifar = experiment.build_method(experiment.resolve_config(baselines.get_config("paper_pgd_at")))
  assert cifar.attack.eps == pytest.approx(8 / 255) and cifar.attack.step == pytest.approx(
      2 / 255)
  config.adversarial = "trades"
  with pytest.raises(UserError, match=r"config\.adversarial='trades'"):
    experiment.resolve_config(config)
  assert "pgd_at" not in baselines.TABLES["all"] and "pgd_at" in baselines.TABLES["adversarial"]


def test_config_adversarial_composes_with_every_baseline_and_is_recorded():
  """`--config=configs/baselines.py:augmix,cpu --config.adversarial=pgd_at` trains AugMix under
  PGD-AT (it trained plain AugMix while recording pgd_at); adversarial training on adversarial
  training is refused."""
  from freqrobust.workdir import UserError
  config = baselines.get_config("augmix,cpu")
  config.adversarial = "pgd_at"
  config.adversarial_args = ml_collections.ConfigDict(dict(steps=2))
  config = experiment.resolve_config(config)
  method = experiment.build_method(config)
  assert isinstance(method, adversarial.AdversarialComposition)
  assert type(method.method) is registry.BASELINES["augmix"] and method.attack.steps == 2
  choices = experiment.method_choices(config, method)
  assert choices["method"] == "augmix" and choices["adversarial"] == "pgd_at"
  assert choices["adversarial_views"] == [0]
  assert choices["method_fields"]["width"] == registry.BASELINES["augmix"]().width
  # A train step runs the composition: AugMix's JSD and the attack's perturbation are logged.
  exp = experiment.build(_tiny("augmix", pad=0, flip=False, adversarial="fgsm_rs"), 64)
  assert exp.method.name == "augmix+fgsm_rs"
  state = exp.init_state(jax.random.key(0), sharding.Sharder(jax.devices()[:1]))
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (8, 8, 8, 1)).astype(np.uint8),
           "label": rng.integers(0, 10, 8).astype(np.int32)}
  step = jax.jit(functools.partial(train.train_step, method=exp.method, schedule=exp.schedule))
  _, metrics = step(state, batch, jax.random.key(1))
  assert np.isfinite(float(metrics["jsd"])) and 0 < float(metrics["adv_perturbation"]) <= 0.1001
  config.method = "pgd_at"
  config.method_args = baselines._defaults(registry.BASELINES["pgd_at"])
  with pytest.raises(UserError, match=r"config\.method='pgd_at' is adversarial training already"):
    experiment.resolve_config(config)
