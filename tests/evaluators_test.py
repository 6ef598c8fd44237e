"""Evaluations as modules: the registry, the resumable records, results.json's statuses, in-loop
evaluation lines, kept checkpoints, and the defects these replaced."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import ml_collections
import pytest

import workdirs
from freqrobust import evaluate, evaluators, experiment, frequency, report, train, trained
from freqrobust import workdir as workdir_lib
from freqrobust.evaluators import base


def tiny(**train_fields):
  c = workdirs.tiny_config()
  c.train.max_steps = 4
  c.train.num_epochs = 1
  c.train.checkpoint_every_steps = 4
  c.train.log_every_steps = 2
  c.evals.clean.every_epochs = 0
  for k, v in train_fields.items():
    c.train[k] = v
  return c


class Counting(base.Evaluator):
  """A test evaluator: counts its runs; fails while `fail` is set."""
  type = "counting"
  defaults = {"fail": False}
  columns = (base.Column("mean_logit", "mean logit", "mean of every logit"),)
  calls = []

  def run(self, context):
    Counting.calls.append(context.step)
    if self.settings["fail"]:
      raise RuntimeError("evaluation crashed")
    images, _ = context.test_set()
    logits = context.model.predict(images[:8].astype(np.float32) / 255.0)
    return {"mean_logit": float(np.mean(logits))}


@pytest.fixture(autouse=True)
def counting_registered():
  evaluators.register(Counting)
  Counting.calls.clear()
  yield
  evaluators.EVALUATORS.pop("counting", None)


def with_counting(config, **fields):
  import ml_collections
  config.evals.counting = ml_collections.ConfigDict(dict(type="counting", **fields))
  return config


def test_finished_only_when_every_evaluation_is_done_and_a_rerun_finishes_them(tmp_path):
  """The defect: results.json said "finished" before the corruption evaluation ran, so a run
  whose evaluation crashed was reported with another model's numbers. Now it says "trained"
  until every at_end evaluation is recorded; the same command finishes them without training."""
  workdir = str(tmp_path / "run")
  config = with_counting(tiny(), fail=True)
  with pytest.raises(RuntimeError, match="crashed"):
    train.train_and_evaluate(config, workdir)
  results = workdir_lib.read_results(workdir)
  assert results["status"] == "trained" and results["step"] == 4
  assert "clean" in results["evals"] and "counting" not in results["evals"]
  assert workdir_lib.read_finished_results(workdir) is None  # The report skips it.
  clean_record = results["evals"]["clean"]
  config.evals.counting.fail = False
  finished = train.train_and_evaluate(config, workdir)
  assert finished["status"] == "finished" and finished["step"] == 4
  assert finished["evals"]["clean"]["time"] == clean_record["time"]  # Recorded, not rerun.
  assert finished["metrics"]["counting/mean_logit"] == pytest.approx(
      finished["evals"]["counting"]["metrics"]["mean_logit"])
  assert Counting.calls == [4, 4]
  written = workdir_lib.read_results(workdir)
  assert written["status"] == "finished" and written["model"] == finished["model"]
  assert written["clean"]["accuracy"] == written["metrics"]["clean/accuracy"]
  # The report's third table has the evaluation's declared column.
  run = report.load_run(workdir)
  assert run.metrics == {"counting/mean_logit": written["metrics"]["counting/mean_logit"]}
  assert run.columns["counting/mean_logit"]["label"] == "counting: mean logit"
  assert run.clean == written["clean"]["accuracy"] and not run.other_model
  # evaluate finishes an interrupted run too, and skips what is recorded.
  evaluate.evaluate_run(workdir, ["counting"], progress=False)
  assert Counting.calls == [4, 4]


def test_in_loop_evaluations_are_eval_lines_and_never_replace_training_lines(tmp_path):
  """The defect: a line counted as an evaluation only with a key starting "test_", so an
  in-loop evaluation under another name replaced the training line of its step, and the
  report's training rate read it."""
  workdir = str(tmp_path / "run")
  config = with_counting(tiny(max_steps=8), every_epochs=0.5, at_end=False)
  config.data.synthetic_examples = 64  # 4 steps per epoch: evaluations at steps 2, 4 and 6.
  config.train.num_epochs = 2
  train.train_and_evaluate(config, workdir)
  lines = workdir_lib.read_metrics(workdir)
  kinds = {(m["step"], workdir_lib.line_kind(m)) for m in lines}
  for step in (2, 4, 6):
    assert (step, "train") in kinds and (step, "eval") in kinds, step
  evals = [m for m in lines if m["kind"] == "eval"]
  assert [m["step"] for m in evals if "counting/mean_logit" in m] == [2, 4, 6]
  assert all("loss" not in m for m in evals) and all(
      "counting/mean_logit" not in m for m in lines if m["kind"] == "train")
  assert 8 in [m["step"] for m in evals if "clean/accuracy" in m]  # The end's evaluation.
  assert report.training_rate(workdir) is not None
  # An old line without "kind" still reads as before.
  assert workdir_lib.line_kind({"step": 1, "test_accuracy": 0.5}) == "eval"
  assert workdir_lib.line_kind({"step": 1, "loss": 0.5}) == "train"


def test_metrics_writer_keeps_kinds_apart(tmp_path):
  writer = workdir_lib.MetricsWriter(str(tmp_path))
  writer.write(10, {"loss": 1.0, "accuracy": 0.5})
  writer.write(10, {"accuracy": 0.9}, kind="eval")  # The same name: a separate line.
  with pytest.raises(ValueError, match="reserved"):
    writer.write(11, {"kind": 1.0})
  with pytest.raises(ValueError, match="kind="):
    writer.write(11, {"x": 1.0}, kind="test")
  writer.close()
  lines = workdir_lib.read_metrics(str(tmp_path))
  assert [(m["kind"], m["accuracy"]) for m in lines] == [("train", 0.5), ("eval", 0.9)]


def test_learned_b_is_logged_once_as_the_step_used_it():
  """The defect: b(M) was logged by the method (before the update) and again by the train step
  (after it), and the second silently won."""
  config = experiment.resolve_config(workdirs.tiny_paper_config())
  exp = experiment.build(config, 64)
  state = exp.init_state(jax.random.key(0), train.sharding.Sharder(jax.devices()[:1]))
  before = np.asarray(frequency.basic_open_ratios(state.params["aps"]["theta_b"]))
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.integers(0, 256, (16, 12, 12, 1)), jnp.uint8),
           "label": jnp.asarray(rng.integers(0, 10, 16), jnp.int32)}
  step = jax.jit(lambda s, b, k: train.train_step(s, b, k, method=exp.method,
                                                  schedule=exp.schedule))
  new, metrics = step(state, batch, jax.random.key(1))
  after = np.asarray(frequency.basic_open_ratios(new.params["aps"]["theta_b"]))
  assert not np.allclose(before, after)  # The update moved theta_b: the two values differ.
  np.testing.assert_allclose([metrics["b_L"], metrics["b_M"], metrics["b_H"]], before,
                             rtol=1e-6)


def test_a_run_loads_for_analysis_with_a_moved_baseline_and_another_device_count(tmp_path):
  """The defects: loading a run went through the corruption-settings check (a moved baseline
  made it unloadable) and the device-count divisibility check (8 devices here; batch 12)."""
  workdir = workdirs.random_workdir(str(tmp_path / "run"))
  config = workdir_lib.read_config(workdir)
  config.corruptions.baseline_workdir = str(tmp_path / "moved_away")
  config.evals.corruptions.at_end = True
  config.eval.batch_size = 12
  workdir_lib.write_config(workdir, config)
  assert jax.device_count() == 8
  with pytest.raises(workdir_lib.UserError):
    experiment.resolve_config(config)  # Training refuses both, before any work.
  run = trained.load_trained(workdir)
  logits = run.predict(np.zeros((5, 12, 12, 1), np.float32))
  assert logits.shape == (5, 10)


def test_evaluation_variables_trace_under_jit():
  """The defect: int() on the EMA's count, which fails on a traced value."""
  config = experiment.resolve_config(workdirs.tiny_paper_config(ema_decay=0.9))
  exp = experiment.build(config, 64)
  state = exp.init_state(jax.random.key(0), train.sharding.Sharder(jax.devices()[:1]))
  eager = experiment.evaluation_variables(config, state)
  traced = jax.jit(lambda s: experiment.evaluation_variables(config, s))(state)
  jax.tree.map(np.testing.assert_allclose, eager, traced)


def test_hfc_split_evaluator_laws_and_the_cli_on_a_checkpoint(tmp_path):
  workdir = workdirs.random_workdir(str(tmp_path / "run"))
  flat = evaluate.evaluate_run(workdir, ["hfc_split"], progress=False)
  clean = evaluate.evaluate_run(workdir, ["clean"], progress=False)["clean/accuracy"]
  assert set(flat) == {"hfc_split/examples"} | {f"hfc_split/{p}_r{r}" for p in ("low", "high")
                                               for r in (4, 8, 12, 16)}
  assert flat["hfc_split/examples"] == 64  # The synthetic test split, under num_examples.
  # r = 16 at 32 px is 6 at 12 px; a radius past every frequency keeps the whole image, so
  # without the per-image rescaling the low-pass accuracy is the clean accuracy.
  config = workdir_lib.read_config(workdir)
  config.evals.hfc_split.radii = (100,)
  config.evals.hfc_split.rescale = "none"
  workdir_lib.write_config(workdir, config)
  wide = evaluate.evaluate_run(workdir, ["hfc_split"], progress=False)
  assert wide["hfc_split/low_r100"] == pytest.approx(clean)
  assert os.path.exists(os.path.join(workdir, "evals", "hfc_split", "hfc_split.png"))
  with pytest.raises(workdir_lib.UserError, match="No evaluation named 'nosuch'"):
    evaluate.evaluate_run(workdir, ["nosuch"])


def test_bad_evaluation_entries_are_refused_before_training(tmp_path):
  config = tiny()
  config.evals.clean.type = "cleen"
  with pytest.raises(workdir_lib.UserError, match=r"config\.evals\.clean\.type='cleen'"):
    train.train_and_evaluate(config, str(tmp_path / "a"))
  config = tiny()
  config.evals.hfc_split.radii = (0,)
  config.evals.hfc_split.at_end = True
  with pytest.raises(workdir_lib.UserError, match="radii"):
    train.train_and_evaluate(config, str(tmp_path / "b"))
  config = with_counting(tiny(), colour="red")
  with pytest.raises(workdir_lib.UserError, match=r"unknown field\(s\) \['colour'\]"):
    train.train_and_evaluate(config, str(tmp_path / "c"))
  assert not any(os.path.exists(tmp_path / d) for d in "abc")


def test_kept_checkpoints_are_evaluated_and_analysed_per_step(tmp_path):
  workdir = str(tmp_path / "run")
  config = tiny(max_steps=8, keep_checkpoints=1, keep_every_epochs=1.0)
  config.train.num_epochs = 2
  config.train.checkpoint_every_steps = 8
  train.train_and_evaluate(config, workdir)
  steps = sorted(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit())
  assert steps == [4, 8]  # Epoch 1 kept beside the newest.
  flat = evaluate.evaluate_run(workdir, ["clean"], step=4, progress=False)
  at4 = workdir_lib.read_results(workdir_lib.step_dir(workdir, 4))
  assert at4["step"] == 4 and at4["evals"]["clean"]["step"] == 4
  assert flat["clean/accuracy"] == at4["metrics"]["clean/accuracy"]
  assert workdir_lib.read_results(workdir)["step"] == 8  # The run's own record is untouched.
  with pytest.raises(workdir_lib.UserError, match="kept steps: 4, 8"):
    trained.load_trained(workdir, 6)
  from absl import flags
  from freqrobust import analyze
  values = flags.FlagValues()
  analyze.define_flags(values, "heatmap")
  values(["analyze", f"--workdir={workdir}", "--step=4", "--num_images=4", "--progress=false"])
  analyze.main(["analyze", "heatmap"], values)
  assert os.path.exists(os.path.join(workdir, "steps", "4", "analysis", "heatmap",
                                     "heatmap.json"))


def test_the_train_loop_names_no_particular_evaluation():
  import inspect
  source = inspect.getsource(train)
  for name in evaluators.EVALUATORS:
    assert f'"{name}"' not in source and f"'{name}'" not in source, name
  for word in ("corruption", "summary_figure", "run_corruption_eval"):
    assert word not in source, word


def test_adversarial_evaluation_attacks_the_reported_function(tmp_path):
  """eps = 0 gives the clean accuracy; the curve falls with eps; the checks are recorded."""
  workdir = str(tmp_path / "run")
  config = tiny(max_steps=8, test_time_flip=True)
  config.train.num_epochs = 2
  config.evals.adversarial.update(dict(eps=(0.0, 0.05, 0.3), main_eps=0.05, num_examples=32,
                                       pgd_steps=5, apgd_steps=5, batch_size=32,
                                       version="fast"))
  train.train_and_evaluate(config, workdir)
  flat = evaluate.evaluate_run(workdir, ["adversarial", "clean"], progress=False)
  run = trained.load_trained(workdir)
  images, labels = workdirs_images(run.config, 32)
  clean32 = 100.0 * np.mean(run.predict(images).argmax(-1) == labels)
  assert flat["adversarial/clean"] == pytest.approx(clean32)
  assert flat["adversarial/pgd_eps0"] == pytest.approx(clean32)  # No perturbation at eps 0.
  assert flat["adversarial/pgd_eps0.3"] <= flat["adversarial/pgd_eps0.05"] <= clean32
  assert flat["adversarial/pgd_eps0.3"] <= 5.0  # ~0 at a large eps (a 12x12 synthetic task).
  saved = json.load(open(os.path.join(workdir, "evals", "adversarial", "adversarial.json")))
  kinds = {(m["kind"], m["loss"], m["restarts"]) for m in saved["attacks"].values()}
  assert kinds >= {("pgd", "ce", 1), ("apgd", "ce", 1), ("apgd", "dlr", 1), ("fgsm", "ce", 1),
                   ("noise", "ce", 1), ("pgd", "ce", 2), ("apgd", "ce", 2)}
  assert set(saved["checks"]) >= {"monotone", "pgd_le_fgsm_le_clean", "noise_weaker", "in_ball",
                                  "large_eps", "restarts_stable", "transfer_weaker"}
  assert flat["adversarial/failed_checks"] == len(saved["failed_checks"])
  assert saved["checks"]["in_ball"] and saved["checks"]["transfer_weaker"] is None
  # The unbounded check ran (L-inf 1).
  assert saved["large_eps"] == 1.0 and saved["checks"]["large_eps"] is not None
  assert flat["adversarial/large_eps_accuracy"] <= 5.0
  # Each accuracy has its 95% interval around it.
  for k in ("clean", "pgd_main", "apgd_main", "worst_main", "pgd_eps0.3"):
    assert flat[f"adversarial/{k}_lo"] <= flat[f"adversarial/{k}"] <= flat[f"adversarial/{k}_hi"]
  # Worst cases per example: never above any single attack, APGD's over its two losses.
  ce, dlr = flat["adversarial/apgd_ce_main"], flat["adversarial/apgd_dlr_main"]
  assert flat["adversarial/apgd_main"] <= min(ce, dlr)
  assert flat["adversarial/apgd_main"] >= ce + dlr - 100.0 - 1e-9  # Inclusion-exclusion.
  assert flat["adversarial/worst_main"] <= min(flat["adversarial/apgd_main"],
                                               flat["adversarial/pgd_main"])


def test_adversarial_settings_are_checked_before_training():
  for field, value, words in (("apgd_losses", ("ce", "margin"), "apgd_losses"),
                              ("apgd_losses", (), "non-empty"),
                              ("large_eps", -1.0, "large_eps")):
    bad = tiny(max_steps=8)
    bad.evals.adversarial[field] = value
    with pytest.raises(workdir_lib.UserError, match=words):
      evaluators.check(bad)


def workdirs_images(config, n):
  from freqrobust.tools import base as tools_base
  return tools_base.load_test_images(config, n)


@pytest.mark.parametrize("attacks,losses,want", [
    (("pgd",), ("ce", "dlr"), ["clean", "pgd_main", "failed_checks"]),
    (("pgd", "apgd"), ("ce",), ["clean", "pgd_main", "apgd_main", "worst_main", "failed_checks"]),
    (("apgd",), ("ce", "dlr"), ["clean", "apgd_main", "worst_main", "failed_checks"]),
])
def test_adversarial_columns_follow_the_attacks_that_run(attacks, losses, want):
  """A worst-case column only where more than one attack runs; APGD's label names its losses."""
  from freqrobust.evaluators import adversarial
  e = adversarial.Adversarial("adversarial", dict(adversarial.Adversarial.defaults,
                                                  attacks=attacks, apgd_losses=losses,
                                                  version="fast"))
  columns = e.metric_columns()
  assert [c.metric for c in columns] == want
  labels = {c.metric: c.label for c in columns}
  if "apgd_main" in labels:
    assert labels["apgd_main"].startswith("APGD-" + "+".join(l.upper() for l in losses))
  standard = adversarial.Adversarial("adversarial", dict(adversarial.Adversarial.defaults,
                                                         attacks=attacks, apgd_losses=losses))
  assert [c.metric for c in standard.metric_columns()] == [
      "clean", "autoattack_main", "worst_main", "failed_checks"]


def test_every_evaluators_defaults_are_the_configs():
  """configs/default.py writes each entry from its evaluator's `defaults` (written once)."""
  from configs import default
  entries = default.get_config().evals.to_dict()
  own_types = [t for t, cls in evaluators.EVALUATORS.items()  # (Tests register others.)
               if cls.__module__.startswith("freqrobust.evaluators.")]
  assert sorted(e["type"] for e in entries.values()) == sorted(own_types)
  for name, entry in entries.items():
    cls = evaluators.EVALUATORS[entry["type"]]
    own = {k: v for k, v in entry.items() if k not in base.COMMON_FIELDS}
    assert own == dict(cls.defaults), name
    assert set(entry) - set(own) == set(base.COMMON_FIELDS), name


FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "bandpass_run")


def test_a_run_of_the_old_bandpass_name_loads_as_hfc_split(caplog):
  """config.json and results.json written when HFC's split was the evaluation `bandpass` (by the
  code of that time, tests/fixtures/bandpass_run) load under `hfc_split`, with a note; the
  record stays resumable (same settings) and its metrics keep their values."""
  config = workdir_lib.read_config(FIXTURE)
  assert config.evals.bandpass.type == "bandpass"
  with caplog.at_level("WARNING"):
    resolved = experiment.resolve_config(config, for_training=False)
  assert "bandpass" not in resolved.evals and resolved.evals.hfc_split.type == "hfc_split"
  assert any("'bandpass' is now 'hfc_split'" in r.getMessage() for r in caplog.records)
  (evaluator, _), = evaluators.build(resolved, ["hfc_split"])
  old = workdir_lib.read_json(os.path.join(FIXTURE, "results.json"))
  new = evaluators.normalize_results(old)
  assert set(new["evals"]) == {"hfc_split"} and new["evals"]["hfc_split"]["type"] == "hfc_split"
  assert evaluators.same_settings(new["evals"]["hfc_split"], evaluator, resolved)
  assert new["metrics"] == {k.replace("bandpass/", "hfc_split/"): v
                            for k, v in old["metrics"].items()}
  assert "bandpass" in old["evals"]  # A copy: what was read is left as it was.
  assert evaluators.normalize_results(new) is new  # Current results: untouched.
  # An entry of the old type under another name keeps its name; the new name is never taken twice.
  both = ml_collections.ConfigDict(resolved.to_dict())
  both.evals.mine = dict(resolved.evals.hfc_split.to_dict(), type="bandpass")
  evaluators.normalize_config(both)
  assert both.evals.mine.type == "hfc_split" and both.evals.hfc_split.type == "hfc_split"


def test_settings_the_standard_version_does_not_run_are_named(monkeypatch):
  """Version "standard" (AutoAttack) runs neither PGD nor `apgd_losses`: a user who sets
  `attacks=pgd` without `version=fast` is told, naming the settings, instead of silently getting
  AutoAttack."""
  from configs import default
  from freqrobust.evaluators import adversarial
  warned = []
  monkeypatch.setattr(adversarial.absl_logging, "warning", warned.append)
  config = default.get_config()
  given = dict(adversarial.Adversarial.defaults, attacks=["pgd"], pgd_steps=5)
  adversarial.Adversarial("adversarial", given).check(config)
  assert len(warned) == 1 and "attacks=['pgd'], pgd_steps=5" in warned[0]
  assert "version=fast" in warned[0]
  for settings in (dict(given, version="fast"), dict(adversarial.Adversarial.defaults)):
    warned.clear()
    adversarial.Adversarial("adversarial", settings).check(config)
    assert warned == []
