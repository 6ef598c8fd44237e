"""The adversarial evaluation (freqrobust/evaluators/adversarial.py on attacks.runner, records and
checks) on tiny fixed models: the worst case over every attack run at the main radius, the
per-example records and resuming from them, the weights as a traced argument (no recompilation
for new weights), the transfer check, each accuracy's interval and the cost line."""
import dataclasses
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from freqrobust import workdir as workdir_lib
from freqrobust.attacks import evaluation, runner
from freqrobust.evaluators import adversarial, adversarial_store, base

N, SHAPE, K = 24, (4, 4, 1), 4
D = int(np.prod(SHAPE))
_rng = np.random.default_rng(3)
WEIGHTS = {"w1": jnp.asarray(_rng.standard_normal((D, 16)) * np.sqrt(2.0 / D), jnp.float32),
           "w2": jnp.asarray(_rng.standard_normal((16, K)) * np.sqrt(2.0 / 16), jnp.float32)}
W_USELESS = jnp.asarray(_rng.standard_normal((D, K)), jnp.float32)
TRACES = {"n": 0}


def mlp(variables, x):
  TRACES["n"] += 1  # Python runs only while tracing: counts the compilations.
  h = jax.nn.relu(x.reshape(x.shape[0], -1) @ variables["w1"])
  return 4.0 * (h @ variables["w2"])


def masked(variables, x):
  """The mlp on finely quantised inputs, with a small useless gradient (partial masking: the
  gradient is non-zero, so no_zero_gradients holds, but it points nowhere useful)."""
  q = jax.lax.stop_gradient(jnp.round(x * 64.0) / 64.0)
  return mlp(variables, q) + 1e-3 * (x.reshape(x.shape[0], -1) @ W_USELESS)


@dataclasses.dataclass
class Model:
  """What the evaluation reads of a `trained.TrainedModel`."""
  apply: Callable
  variables: Any
  fingerprint: str
  step: int = 1
  config: Any = None


def _config():
  config = ml_collections.ConfigDict()
  config.data = ml_collections.ConfigDict({"dataset": "fashion_mnist"})
  return config


def _test_set(seed=0):
  x = np.random.default_rng(seed).integers(40, 216, (N,) + SHAPE).astype(np.uint8)
  traces = TRACES["n"]
  y = np.asarray(jnp.argmax(mlp(WEIGHTS, jnp.asarray(x, jnp.float32) / 255.0), -1))
  TRACES["n"] = traces  # An eager call, not a compilation.
  return x, y


def _evaluator(**settings):
  values = dict(adversarial.Adversarial.defaults, eps=(0.1,), main_eps=0.1, num_examples=N,
                pgd_steps=2, apgd_steps=3, batch_size=16, attacks=("pgd",), version="fast")
  values.update(settings)
  return adversarial.Adversarial("adversarial", values)


def _run(evaluator, model, out_root, write=True, test_set=None):
  model.config = model.config or _config()
  context = base.Context(model, str(out_root), test_set=test_set or _test_set(),
                         progress=False, write_files=write)
  return evaluator.run(context)


def test_worst_case_counts_every_attack_run_at_the_main_radius(tmp_path):
  """An example broken only by the noise draw, FGSM or an extra restart is not robust (it was
  counted robust when the worst case read PGD and APGD alone)."""
  model = Model(masked, WEIGHTS, "masked")
  out = _run(_evaluator(attacks=("pgd", "apgd")), model, tmp_path)
  r = adversarial_store.load_records(str(tmp_path / "evals" / "adversarial"),
                                     _stored_key(tmp_path), N)
  at_main = r.names(eps=0.1)
  kinds = {r.meta[k]["kind"] for k in at_main}
  assert kinds == {"pgd", "apgd", "fgsm", "noise"}
  every = np.mean(r.all_correct(at_main)) * 100.0
  assert out["worst_main"] == pytest.approx(every)
  singles = [k for k in out if k.endswith("_main") and not k.endswith(("_lo", "_hi"))]
  assert out["worst_main"] <= min(out[k] for k in singles)
  # This model's gradient is useless: some example is broken by another attack only.
  pgd_apgd = np.mean(r.all_correct(r.names(kinds=("pgd", "apgd"), eps=0.1))) * 100.0
  assert out["worst_main"] < pgd_apgd


def _stored_key(root):
  return workdir_lib.read_json(os.path.join(root, "evals", "adversarial", "records.json"))["key"]


def test_records_are_stored_and_an_added_attack_runs_alone(tmp_path, monkeypatch, capsys):
  model = Model(mlp, WEIGHTS, "m1")
  first = _run(_evaluator(), model, tmp_path)
  folder = tmp_path / "evals" / "adversarial"
  assert (folder / "records.npz").exists() and (folder / "records.json").exists()
  ran = []
  real = evaluation.run_attack
  monkeypatch.setattr(evaluation, "run_attack",
                      lambda attack, *a, **k: ran.append(attack.name) or real(attack, *a, **k))
  second = _run(_evaluator(attacks=("pgd", "apgd")), model, tmp_path)
  assert ran and all(name.startswith("apgd") for name in ran), ran
  assert "already recorded for this model, not rerun" in capsys.readouterr().out
  for k in ("clean", "pgd_main", "fgsm_main", "noise_main"):
    assert second[k] == first[k]
  assert second["worst_main"] <= first["worst_main"]
  # Nothing new to run: nothing runs, the same figures.
  ran.clear()
  assert _run(_evaluator(attacks=("pgd", "apgd")), model, tmp_path) == second and not ran
  # Another model (or step): every attack runs again.
  _run(_evaluator(), Model(mlp, jax.tree.map(lambda w: 1.1 * w, WEIGHTS), "m2"), tmp_path)
  assert "clean" in ran and any(n.startswith("pgd") for n in ran)


def test_new_weights_reuse_the_compiled_attacks(tmp_path):
  """Training evaluates successive states: the weights are traced arguments, so the second
  evaluation compiles nothing (traces of the model stay put; the jit caches do not grow)."""
  evaluator = _evaluator(attacks=("pgd", "apgd"))
  _run(evaluator, Model(mlp, WEIGHTS, "a"), tmp_path, write=False)
  traces, cache = TRACES["n"], runner.compile_cache_size()
  other = jax.tree.map(lambda w: 0.9 * w, WEIGHTS)
  _run(evaluator, Model(mlp, other, "b"), tmp_path, write=False)
  assert TRACES["n"] == traces
  assert runner.compile_cache_size() == cache


def test_from_state_gives_one_apply_per_predictor():
  """The train loop's models share its predictor's `apply` (the attacks' static argument)."""
  import workdirs
  from freqrobust import experiment, sharding, trained
  config = experiment.resolve_config(workdirs.tiny_config())
  exp = experiment.build(config, num_train=config.train.batch_size)
  state = exp.init_state(jax.random.key(0), sharding.Sharder())
  predictor = trained.predictor_of(config, exp.model)
  a = trained.from_state(config, exp.model, state, 1, predictor=predictor)
  b = trained.from_state(config, exp.model, state, 2, predictor=predictor)
  assert a.apply is b.apply


def test_transfer_from_an_unmasked_twin_is_flagged(tmp_path, capsys):
  """Partial masking: the quantised twin with a useless gradient passes no_zero_gradients, but
  the unmasked twin's adversarial images break it beyond its own white-box attacks."""
  source, target = tmp_path / "source", tmp_path / "target"
  _run(_evaluator(eps=(0.15,), main_eps=0.15), Model(mlp, WEIGHTS, "twin"), source)
  assert (source / "evals" / "adversarial" / adversarial_store.IMAGES).exists()
  evaluator = _evaluator(eps=(0.15,), main_eps=0.15, transfer_from=str(source))
  evaluator.check(_config())
  out = _run(evaluator, Model(masked, WEIGHTS, "masked"), target)
  assert out["transfer_main"] < out["pgd_main"] - 1.0
  assert out["worst_main"] <= out["transfer_main"]
  saved = workdir_lib.read_json(str(target / "evals" / "adversarial" / "adversarial.json"))
  assert saved["checks"]["no_zero_gradients"] is True
  assert saved["checks"]["transfer_weaker"] is False and out["failed_checks"] >= 1
  assert "transfer_weaker" in capsys.readouterr().out
  # Other test images: refused, naming the field.
  with pytest.raises(workdir_lib.UserError, match=r"evals\.adversarial\.transfer_from"):
    _run(evaluator, Model(masked, WEIGHTS, "masked"), tmp_path / "t2", test_set=_test_set(9))
  with pytest.raises(workdir_lib.UserError, match=r"transfer_from.*evaluate that run first"):
    _evaluator(transfer_from=str(tmp_path / "none")).check(_config())


def test_intervals_and_cost_lines(tmp_path, capsys):
  out = _run(_evaluator(), Model(mlp, WEIGHTS, "m1"), tmp_path)
  printed = capsys.readouterr().out
  assert "s per 1000 images" in printed and "PGD-2 at 0.1" in printed
  for k in ("clean", "pgd_main", "worst_main", "pgd_eps0.1"):
    lo, hi = out[f"{k}_lo"], out[f"{k}_hi"]
    assert lo <= out[k] <= hi
    from freqrobust import metrics
    want = metrics.binomial_interval(round(out[k] * N / 100), N)
    assert (lo, hi) == pytest.approx((100 * want[0], 100 * want[1]))


def test_bad_settings_are_refused_naming_the_field():
  for field, value in (("version", "plus"), ("transfer_from", 3), ("square_queries", 0),
                       ("eps", 0.1), ("eps", ("a",)), ("eps", (True,))):
    with pytest.raises(workdir_lib.UserError, match=f"evals.adversarial.{field}"):
      _evaluator(**{field: value}).check(_config())


def test_standard_runs_autoattack_at_the_main_radius_on_the_points_still_robust(tmp_path):
  """version "standard": APGD-CE, APGD-T, FAB-T, Square in turn, each on the examples the ones
  before left correct; APGD-CE + APGD-T along the curve; AutoAttack's Square check."""
  evaluator = _evaluator(version="standard", eps=(0.02, 0.05), main_eps=0.05,
                         autoattack_steps=2, apgd_steps=2, target_classes=2, square_queries=4)
  out = _run(evaluator, Model(mlp, WEIGHTS, "m1"), tmp_path)
  saved = workdir_lib.read_json(str(tmp_path / "evals" / "adversarial" / "adversarial.json"))
  attacks = saved["attacks"]
  chain = [k for k, m in attacks.items() if m["eps"] == 0.05 and m["kind"] in
           ("apgd", "apgd_t", "fab_t", "square") and (m["after"] or m["kind"] == "apgd")
           and m["restarts"] == 1]
  assert [attacks[k]["kind"] for k in chain] == ["apgd", "apgd_t", "fab_t", "square"]
  for i, k in enumerate(chain):
    assert attacks[k]["after"] == chain[:i]
  assert {(m["kind"], m["eps"]) for m in attacks.values()} >= {("apgd", 0.02), ("apgd_t", 0.02)}
  assert "pgd" not in {m["kind"] for m in attacks.values()}
  r = adversarial_store.load_records(str(tmp_path / "evals" / "adversarial"),
                                     _stored_key(tmp_path), N)
  robust = r.all_correct(chain)
  assert out["autoattack_main"] == pytest.approx(100.0 * robust.mean())
  assert out["worst_main"] <= out["autoattack_main"] <= out["apgd_ce_main"]
  # Each later attack ran only where the earlier ones left the example correct.
  square = r.values[chain[-1]]
  assert square[~r.all_correct(chain[:-1])].all()
  assert 0 < r.all_correct(chain[:-1]).sum() < N  # Square had examples left to attack.
  assert saved["checks"]["square_weaker"] in (True, False)
  assert "apgd_eps0.02" in out and "autoattack_main_lo" in out


def test_square_confirms_the_radii_beyond_the_main_one(tmp_path):
  """version "standard", square_beyond: at the curve's radii above the main one Square runs on
  the examples APGD-CE and APGD-T left correct (robustness beyond the training radius is the claim
  a gradient-free attack must confirm), `robust_eps<e>` counts every attack there, and
  AutoAttack's Square check covers those radii; below the main radius, and with
  square_beyond=False, no Square runs there."""
  settings = dict(version="standard", eps=(0.02, 0.05, 0.08), main_eps=0.05, autoattack_steps=2,
                  apgd_steps=2, target_classes=2, square_queries=4)
  out = _run(_evaluator(**settings), Model(mlp, WEIGHTS, "m1"), tmp_path / "on")
  saved = workdir_lib.read_json(str(tmp_path / "on" / "evals" / "adversarial" /
                                    "adversarial.json"))
  squares = {m["eps"]: m for m in saved["attacks"].values() if m["kind"] == "square"}
  assert sorted(squares) == [0.05, 0.08]
  kinds = {k: m["kind"] for k, m in saved["attacks"].items()}
  assert [kinds[k] for k in squares[0.08]["after"]] == ["apgd", "apgd_t"]
  r = adversarial_store.load_records(str(tmp_path / "on" / "evals" / "adversarial"),
                                     _stored_key(tmp_path / "on"), N)
  assert out["robust_eps0.08"] == pytest.approx(100.0 * r.worst_accuracy(0.08))
  assert out["robust_eps0.08"] <= out["apgd_eps0.08"]
  assert "robust_eps0.02" not in out and "robust_eps0.08_lo" in out
  assert saved["checks"]["square_weaker"] in (True, False)
  out = _run(_evaluator(square_beyond=False, **settings), Model(mlp, WEIGHTS, "m1"),
             tmp_path / "off")
  saved = workdir_lib.read_json(str(tmp_path / "off" / "evals" / "adversarial" /
                                    "adversarial.json"))
  assert [m["eps"] for m in saved["attacks"].values() if m["kind"] == "square"] == [0.05]
  assert "robust_eps0.08" not in out


def test_square_check_fails_where_square_beats_the_white_box_attacks_beyond_main():
  """AutoAttack's flag at a radius above the main one: Square breaking 3 of 24 examples the
  white-box chain left correct there (12.5 points > 0.2) fails `square_weaker`."""
  from freqrobust.attacks import checks as checks_lib, records as records_lib
  r = records_lib.Records(N)
  meta = dict(loss="ce", steps=2, restarts=1, targets=0, in_ball=True, seconds=0.0)
  for name, kind, eps, after in (("a", "apgd", 0.05, []), ("s", "square", 0.05, ["a"]),
                                 ("b", "apgd", 0.08, []), ("t", "square", 0.08, ["b"])):
    broken = 3 if name == "t" else 0
    values = np.arange(N) >= broken
    r.values[name], r.meta[name] = values, dict(meta, kind=kind, eps=eps, after=after)
  radii = checks_lib.Radii(0.05, (0.05, 0.08), None)
  assert checks_lib.square_weaker(r, radii, checks_lib.Thresholds()) is False
  r.values["t"] = np.ones(N, bool)
  assert checks_lib.square_weaker(r, radii, checks_lib.Thresholds()) is True


def test_attacks_on_the_examples_still_robust_compile_few_shapes():
  """AutoAttack's chain attacks only the examples still correct, a number that changes with every
  in-training evaluation; the batch is padded to a power of two (at most the batch size), so
  counts in one bucket reuse the compiled attack (it was sized to the count: a compilation per
  count, every evaluation)."""
  x, y = _test_set()
  x = np.asarray(x, np.float32) / 255.0
  attack = runner.Attack("apgd", 0.05, "ce", 2)
  apply = runner.Unbound(lambda z: mlp(WEIGHTS, z))
  for count in (5, 7):
    only = np.arange(N) < count
    record = runner.run_attack(attack, apply, None, jax.random.key(0), x, y, norm="linf",
                               batch_size=16, only=only)
    assert record.values[count:].all()
    if count == 5:
      cache = runner.compile_cache_size()
  assert runner.compile_cache_size() == cache


def test_transfer_images_changed_at_the_source_are_scored_again(tmp_path, monkeypatch):
  """The source run re-evaluated (an attack added folds its images in, same model): the target's
  transfer record is of the old images and must not be reused (it was: its name held the source
  model alone)."""
  source, target = tmp_path / "source", tmp_path / "target"
  _run(_evaluator(eps=(0.15,), main_eps=0.15), Model(mlp, WEIGHTS, "twin"), source)
  evaluator = _evaluator(eps=(0.15,), main_eps=0.15, transfer_from=str(source))
  _run(evaluator, Model(masked, WEIGHTS, "masked"), target)
  path = str(source / "evals" / "adversarial" / adversarial_store.IMAGES)
  stored = adversarial_store.load_images(path)
  x = np.asarray(_test_set()[0], np.float32) / 255.0
  stored["images"] = x.copy()  # Now the clean images: the transfer breaks nothing.
  adversarial_store._save_npz(path, stored)
  ran = []
  real = evaluation.run_attack
  monkeypatch.setattr(evaluation, "run_attack",
                      lambda attack, *a, **k: ran.append(attack.kind) or real(attack, *a, **k))
  out = _run(evaluator, Model(masked, WEIGHTS, "masked"), target)
  assert ran == ["given"]
  assert out["transfer_main"] == pytest.approx(out["clean"])


def test_a_chained_attack_reports_the_accuracy_after_it(tmp_path, capsys):
  """An attack run on the examples still robust records the others as unbroken (True); its
  console line and its accuracy in adversarial.json are the accuracy after it and the attacks
  before it (as AutoAttack's log), not the share of True values, which counted every example it
  never attacked (those already broken, or wrong when clean) as correct."""
  evaluator = _evaluator(version="standard", eps=(0.05,), main_eps=0.05, autoattack_steps=2,
                         target_classes=2, square_queries=4)
  _run(evaluator, Model(mlp, WEIGHTS, "m1"), tmp_path)
  printed = capsys.readouterr().out
  saved = workdir_lib.read_json(str(tmp_path / "evals" / "adversarial" / "adversarial.json"))
  r = adversarial_store.load_records(str(tmp_path / "evals" / "adversarial"),
                                     _stored_key(tmp_path), N)
  chained = [k for k, m in saved["attacks"].items() if m["after"]]
  assert chained
  for name in chained:
    after = r.all_correct(saved["attacks"][name]["after"] + [name]).mean()
    assert saved["attacks"][name]["accuracy"] == pytest.approx(after)
  apgd_t = [k for k in chained if saved["attacks"][k]["kind"] == "apgd_t"][0]
  want = r.all_correct(saved["attacks"][apgd_t]["after"] + [apgd_t]).mean()
  assert r.accuracy(apgd_t) > want  # The chain broke something before: the two differ.
  line = [l for l in printed.splitlines() if "APGD-T-2" in l][0]
  assert f"{100.0 * want:.4g}%" in line


def test_every_dataset_has_its_own_threat_model():
  """Each dataset the data layer knows has its declared radii (an unknown one fell back to
  CIFAR-10's 8/255 silently, whatever its pixel scale); one without is named with the fix."""
  from freqrobust import data
  assert set(data.DATASETS) <= set(adversarial.DEFAULT_EPS)
  assert adversarial.default_radii("fashion_mnist", "linf")[0] == 0.1
  with pytest.raises(workdir_lib.UserError, match="imagenette.*main_eps and eps"):
    adversarial.default_radii("imagenette", "linf")


def straight_through(variables, x):
  """`masked` with the same forward pass and a BPDA gradient: the quantiser passes the gradient
  straight through and the useless term none (the surrogate an attacker would write)."""
  q = x + jax.lax.stop_gradient(jnp.round(x * 64.0) / 64.0 - x)
  useless = jax.lax.stop_gradient(1e-3 * (x.reshape(x.shape[0], -1) @ W_USELESS))
  return mlp(variables, q) + useless


def test_surrogate_attacks_find_what_a_masking_component_hides():
  """`surrogate`: at the main radius and above it, APGD-CE and APGD-T crafted through the
  surrogate's gradient run after every other attack (Square included) and are scored on the
  model: on the masked model they break examples the whole AutoAttack chain left correct, the
  worst case counts them, AutoAttack's own figure does not, and `surrogate_weaker` fails."""
  x, y = _test_set()
  x = np.asarray(x, np.float32) / 255.0
  protocol = evaluation.Protocol(norm="linf", main=0.1, curve=(0.05, 0.1, 0.15),
                                 version="standard", autoattack_steps=5, apgd_steps=5,
                                 target_classes=2, square_queries=4, sanity_checks=False,
                                 surrogate="frozen_gate")
  todo = evaluation.plan(protocol)
  surrogate = [a for a in todo if a.surrogate]
  assert sorted({a.eps for a in surrogate}) == [0.1, 0.15]
  assert {a.kind for a in surrogate} == {"apgd", "apgd_t"}
  squares = {a.eps: a.name for a in todo if a.kind == "square"}
  assert all(squares[a.eps] in a.after for a in surrogate)  # After Square at its radius.
  with pytest.raises(ValueError, match="surrogate"):
    evaluation.evaluate(runner.Unbound(lambda z: masked(WEIGHTS, z)), None, jax.random.key(0),
                        x, y, todo, norm="linf", batch_size=16)
  r = evaluation.evaluate(runner.Unbound(lambda z: masked(WEIGHTS, z)), None,
                          jax.random.key(0), x, y, todo, norm="linf", batch_size=16,
                          surrogates={"frozen_gate": runner.Unbound(
                              lambda z: straight_through(WEIGHTS, z))})
  out, checked = adversarial.summarize(r, protocol, todo)
  assert checked["checks"]["surrogate_weaker"] is False
  assert out["worst_main"] < out["autoattack_main"]
  assert out["robust_eps0.15"] < out["apgd_eps0.15"]  # The surrogate counted beyond main too.
  # The same protocol on the plain network, its own function as the "surrogate": nothing is
  # masked, the surrogate attacks add (almost) nothing, and the check holds.
  plain = runner.Unbound(lambda z: mlp(WEIGHTS, z))
  r = evaluation.evaluate(plain, None, jax.random.key(0), x, y, todo, norm="linf",
                          batch_size=16, surrogates={"frozen_gate": plain})
  gain = [r.chain_accuracy(a.after[-1]) - r.chain_accuracy(a.name) for a in surrogate]
  assert max(gain) <= 1.0 / N + 1e-9


def test_surrogate_check_reads_each_radius_after_every_other_attack():
  """`surrogate_weaker`: the surrogate attacks of a radius, together, lower the accuracy that
  every other attack there left by <= 0.2 points; one radius failing fails it."""
  from freqrobust.attacks import checks as checks_lib, records as records_lib
  r = records_lib.Records(N)
  meta = dict(loss="ce", steps=2, restarts=1, targets=0, in_ball=True, seconds=0.0)
  for name, eps, after, surrogate in (("a", 0.1, [], ""), ("s", 0.1, ["a"], ""),
                                      ("f", 0.1, ["a", "s"], "frozen_gate"),
                                      ("g", 0.1, ["a", "s", "f"], "frozen_gate"),
                                      ("b", 0.2, [], ""), ("h", 0.2, ["b"], "frozen_gate")):
    r.values[name] = np.arange(N) >= (2 if name == "g" else 0)
    r.meta[name] = dict(meta, kind="square" if name == "s" else "apgd", eps=eps, after=after,
                        surrogate=surrogate)
  radii = checks_lib.Radii(0.1, (0.1, 0.2), None)
  assert checks_lib.surrogate_weaker(r, radii, checks_lib.Thresholds()) is False
  r.values["g"] = np.ones(N, bool)
  assert checks_lib.surrogate_weaker(r, radii, checks_lib.Thresholds()) is True
  r.values["h"] = np.arange(N) >= 1  # Beyond the main radius.
  assert checks_lib.surrogate_weaker(r, radii, checks_lib.Thresholds()) is False
  del r.values["f"], r.meta["f"], r.values["g"], r.meta["g"], r.values["h"], r.meta["h"]
  assert checks_lib.surrogate_weaker(r, radii, checks_lib.Thresholds()) is None


@pytest.mark.parametrize("settings,attention,match", [
    (dict(surrogate="frozen"), "extended", "surrogate='frozen' is invalid"),
    (dict(surrogate="frozen_gate", version="fast"), "extended", "version 'standard' only"),
    (dict(surrogate="frozen_gate", version="standard"), "none", "no attention gate")])
def test_bad_surrogate_settings_are_refused(settings, attention, match):
  config = _config()
  config.model = ml_collections.ConfigDict({"attention": attention})
  with pytest.raises(workdir_lib.UserError, match=match):
    _evaluator(**settings).check(config)


def test_a_surrogate_left_unset_keeps_the_records_made_before_it_existed():
  """The settings key (which the report and resuming compare with what was stored) carries
  `surrogate` only when one is set: the evaluations recorded before the setting still match."""
  config = _config()
  assert "surrogate" not in _evaluator().key(config)
  assert _evaluator(surrogate="frozen_gate", version="standard").key(config)["surrogate"] == \
      "frozen_gate"


def test_the_evaluation_builds_the_frozen_gate_surrogate_once_per_model():
  """`Adversarial.surrogates` (`TrainedModel.surrogate_apply`): the reported function of the model
  rebuilt with `frozen_gate` (the same logits), one object per model (the attacks' compilations
  are reused across evaluations), none without a surrogate."""
  from configs import default
  from freqrobust import experiment, models, trained
  cfg = default.get_config().model
  cfg.update(attention="extended", attention_hidden=4, small_widths=(4, 4, 8),
             input_mean=(0.5,), input_std=(0.25,))
  module = models.build_model(cfg, num_classes=3)
  x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 1))
  variables = module.init(jax.random.key(1), x)
  run = trained.TrainedModel(None, module, variables, None, 0, None, False,
                             experiment.predict_apply(module))
  evaluator = _evaluator(surrogate="frozen_gate", version="standard")
  first = evaluator.surrogates(run)["frozen_gate"]
  assert _evaluator(surrogate="frozen_gate", version="standard").surrogates(run) == \
      {"frozen_gate": first}
  np.testing.assert_array_equal(first(variables, x),
                                experiment.predict_apply(module)(variables, x))
  assert _evaluator().surrogates(run) == {}


@pytest.mark.parametrize("kind", ["square", "surrogate"])
def test_a_gain_of_exactly_the_tolerance_holds_whatever_the_float_rounding(kind):
  """AutoAttack flags Square when it takes off MORE than 0.2 points. On 500 examples one more
  broken is exactly 0.2 points; as a difference of float accuracies (0.664 - 0.662) it came out
  as 0.0020000000000000018 and failed the check. Counted in examples it holds; two fail."""
  from freqrobust.attacks import checks as checks_lib, records as records_lib
  n = 500
  r = records_lib.Records(n)
  meta = dict(loss="ce", steps=2, restarts=1, targets=0, in_ball=True, seconds=0.0, eps=0.1)
  first = np.arange(n) >= 168  # 66.4% correct.
  r.values["a"], r.meta["a"] = first, dict(meta, kind="apgd", after=[])
  surrogate = "frozen_gate" if kind == "surrogate" else ""
  r.meta["b"] = dict(meta, kind="apgd" if surrogate else "square", after=["a"],
                     surrogate=surrogate)
  check = checks_lib.surrogate_weaker if surrogate else checks_lib.square_weaker
  radii = checks_lib.Radii(0.1, (0.1,), None)
  for broken, holds in ((1, True), (2, False)):
    r.values["b"] = np.arange(n) >= 168 + broken
    assert check(r, radii, checks_lib.Thresholds()) is holds, broken


def test_a_finished_evaluation_is_summarised_again_from_its_records(tmp_path, monkeypatch):
  """A correction to the summary or a check reaches an evaluation recorded before it, without
  running an attack: results.json's record and adversarial.json are rewritten from the stored
  per-example results; without those results the record stays as it was."""
  from freqrobust import evaluators
  model = Model(mlp, WEIGHTS, "m1", config=_config())
  context = base.Context(model, str(tmp_path), test_set=_test_set(), progress=False)
  ev, records, said = _evaluator(attacks=("pgd", "apgd")), {}, []
  evaluators.run_evals(context, [ev], records, say=said.append)
  right = dict(records["adversarial"]["metrics"])
  # What an older summary wrote: another worst case and a check that failed.
  records["adversarial"]["metrics"]["worst_main"] = 123.0
  target = tmp_path / "evals" / "adversarial" / "adversarial.json"
  stored = workdir_lib.read_json(str(target))
  workdir_lib.write_json(str(target), dict(stored, metrics=dict(stored["metrics"], worst_main=1.0),
                                           failed_checks=["noise_weaker"]))
  monkeypatch.setattr(evaluation, "run_attack", lambda *a, **k: pytest.fail("an attack ran"))
  saved = []
  flat = evaluators.run_evals(context, [ev], records, on_record=saved.append, say=said.append)
  assert records["adversarial"]["metrics"] == right and saved
  assert flat["adversarial/worst_main"] == right["worst_main"]
  assert "summarised again" in said[-1] and "worst_main 123.0 ->" in said[-1], said[-1]
  again = workdir_lib.read_json(str(target))
  assert again["metrics"]["worst_main"] == right["worst_main"]
  assert again["failed_checks"] == stored["failed_checks"]
  # Nothing moved: nothing rewritten, the plain line.
  saved.clear()
  evaluators.run_evals(context, [ev], records, on_record=saved.append, say=said.append)
  assert not saved and said[-1].endswith("already done for this model (step 1).")
  # No per-example results (an evaluation from before they were kept): the record stands.
  (tmp_path / "evals" / "adversarial" / "records.npz").unlink()
  records["adversarial"]["metrics"]["worst_main"] = 123.0
  evaluators.run_evals(context, [ev], records, on_record=saved.append, say=said.append)
  assert not saved and records["adversarial"]["metrics"]["worst_main"] == 123.0
  # A damaged file costs nothing finished: the record stands (the end of a training goes on).
  (tmp_path / "evals" / "adversarial" / "records.json").write_text("{not json")
  evaluators.run_evals(context, [ev], records, on_record=saved.append, say=said.append)
  assert not saved and records["adversarial"]["metrics"]["worst_main"] == 123.0


def test_rereading_records_of_another_model_loads_no_test_set(tmp_path):
  model = Model(mlp, WEIGHTS, "m1", config=_config())
  _run(_evaluator(), model, tmp_path)
  other = Model(mlp, WEIGHTS, "m2", config=_config())
  context = base.Context(other, str(tmp_path), test_set=None, progress=False)
  context.test_set = lambda: pytest.fail("the test set was loaded")
  assert _evaluator().reread(context) is None
