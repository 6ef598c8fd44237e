"""Fake finished runs as training leaves them (results.json, config.json, corruption_eval/,
metrics.jsonl), for the report's tests: `fake_run` writes one, `fixture_root` a small sweep that
exercises every part of the report (seeds, a legacy run name, other corrupted sets, a stale
method, an evaluation recorded with older settings, a corruption evaluation of an older step,
evaluator columns, training rates, an unfinished run)."""
import json
import os

from freqrobust.corruptions import CORRUPTIONS


def fake_run(root, name, clean, corrupted_acc, status="finished", first_corruption_acc=None,
             method_choices=None, label_smoothing=None, sets=None, corrupted_clean=None,
             model="small_resnet", natural=None, metrics=None, corrupted_meta=None):
  """A finished run's files as training writes them: results.json, config.json (the backbone
  `model`; natural training when `natural`, by default when a token of the name is nat/natural)
  and corruption_eval/results.json."""
  workdir = os.path.join(root, name)
  os.makedirs(os.path.join(workdir, "corruption_eval"), exist_ok=True)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    results = {"status": status, "step": 100, "clean": {"accuracy": clean},
               "metrics": dict(metrics or {}), "evals": {}}
    if method_choices is not None:
      results["method_choices"] = method_choices
    json.dump(results, f)
  if natural is None:
    natural = bool({"nat", "natural"} & set(name.split("_")))
  with open(os.path.join(workdir, "config.json"), "w") as f:
    config = {"corruptions": {"evaluate": True}, "model": {"name": model, "attention": "none"},
              "data": {"dataset": "fashion_mnist"}, "method": "paper",
              "augment": {"suppress_prob": 0.0 if natural else 1 / 3, "nfd": not natural}}
    if label_smoothing is not None:
      config["train"] = {"label_smoothing": label_smoothing}
    json.dump(config, f)
  accuracy = {c: {str(s): corrupted_acc for s in range(1, 6)} for c in CORRUPTIONS}
  if first_corruption_acc is not None:
    accuracy[CORRUPTIONS[0]] = {str(s): first_corruption_acc for s in range(1, 6)}
  with open(os.path.join(workdir, "corruption_eval", "results.json"), "w") as f:
    corrupted = {"accuracy": accuracy, "step": 100, **(sets or {}), **(corrupted_meta or {})}
    if corrupted_clean is not None:
      corrupted["clean_accuracy"] = corrupted_clean
    json.dump(corrupted, f)
  return workdir


def edit_json(path, **fields):
  """Updates the top-level fields of a JSON file."""
  with open(path) as f:
    content = json.load(f)
  content.update(fields)
  with open(path, "w") as f:
    json.dump(content, f)


def write_train_lines(workdir, batch, steps_and_times):
  """Train lines of metrics.jsonl at the given (step, time), and the batch size in config.json."""
  config_path = os.path.join(workdir, "config.json")
  with open(config_path) as f:
    config = json.load(f)
  config.setdefault("train", {})["batch_size"] = batch
  edit_json(config_path, train=config["train"])
  with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
    for step, t in steps_and_times:
      f.write(json.dumps({"step": step, "time": t, "loss": 1.0}) + "\n")


# version "fast" (PGD and APGD; "standard", AutoAttack's ensemble, has no PGD column): the
# fixture's records hold PGD's figure.
ADVERSARIAL_ENTRY = {"type": "adversarial", "at_end": True, "every_epochs": 0.0, "norm": "linf",
                     "version": "fast"}


def record_adversarial(workdir, settings, pgd_main, examples=1000):
  """An adversarial evaluation in config.json's evals and results.json's evals, recorded with
  `settings`, of the run's final model: PGD's accuracy, the worst case half a point below, each
  with its 95% interval over `examples` test images, as the evaluation records them."""
  from freqrobust import metrics as metrics_lib
  edit_json(os.path.join(workdir, "config.json"), evals={"adversarial": ADVERSARIAL_ENTRY})
  path = os.path.join(workdir, "results.json")
  with open(path) as f:
    results = json.load(f)
  figures = {"examples": examples}
  for key, value in (("pgd_main", pgd_main), ("worst_main", pgd_main - 0.5)):
    figures[key] = value
    figures[f"{key}_lo"], figures[f"{key}_hi"] = metrics_lib.accuracy_interval(value, examples)
  results["evals"] = {"adversarial": {"type": "adversarial", "settings": settings, "step": 100,
                                      "metrics": figures}}
  results["metrics"].update({f"adversarial/{k}": v for k, v in figures.items()})
  with open(path, "w") as f:
    json.dump(results, f)


def adversarial_settings():
  """(the adversarial evaluation's settings under the current code, older settings: before
  APGD-DLR and the unbounded check)."""
  from freqrobust import evaluators, workdir as workdir_lib
  import ml_collections
  config = ml_collections.ConfigDict({"evals": {"adversarial": ADVERSARIAL_ENTRY},
                                     "data": {"dataset": "fashion_mnist"}})
  built = [e for e, _ in evaluators.build(config)]
  current = workdir_lib.to_jsonable(built[0].key(config))
  return current, {k: v for k, v in current.items() if k not in ("apgd_losses", "large_eps")}


def fixture_root(root):
  """A small sweep under `root` touching every part of the report; returns `root`."""
  v3 = {"dataset": "fashion_mnist", "source": "generated", "num_examples": 1000, "seed": 0,
        "recipe_version": 3, "frost": "procedural", "clean_sha256": "abc"}
  current, old = adversarial_settings()
  # The baseline: two seeds and one of the older naming (seed before cpu).
  for name, clean, acc, first in (("natural_cpu_seed-0", 90.0, 60.0, 30.0),
                                  ("natural_cpu_seed-1", 92.0, 62.0, 35.0),
                                  ("natural_seed-2_cpu", 91.0, 61.0, 32.0)):
    w = fake_run(root, name, clean, acc, first_corruption_acc=first, sets=v3,
                 corrupted_clean=clean - 1, metrics={"bandpass/low_r4": clean / 3})
    write_train_lines(w, 128, [(0, 0.0), (50, 1.0), (100, 2.0), (150, 32.0), (200, 33.0)])
    record_adversarial(w, current, 2.0 + clean / 100)
  for seed, (clean, acc) in enumerate(((89.0, 70.0), (88.5, 71.5))):
    w = fake_run(root, f"gaussian_cpu_seed-{seed}", clean, acc, first_corruption_acc=75.0,
                 sets=v3, corrupted_clean=clean - 2, metrics={"bandpass/low_r4": 40.0 + seed})
    write_train_lines(w, 128, [(0, 0.0), (50, 2.0), (100, 4.0), (150, 6.0)])
    record_adversarial(w, current, 5.0 + seed)
  fake_run(root, "gaussian_cpu_seed-2", 87.0, 73.0, sets=dict(v3, recipe_version=4))
  w = fake_run(root, "pgd_at_cpu_seed-0", 85.0, 55.0, sets=v3)
  record_adversarial(w, old, 60.0)  # Recorded before APGD-DLR: left out.
  fake_run(root, "augmix_cpu_seed-0", 89.5, 74.0, sets=v3, corrupted_meta={"step": 50})
  fake_run(root, "apr_sp_cpu_seed-0", 89.0, 72.0, sets=v3, label_smoothing=0.1,
           method_choices={"method": "apr_sp", "method_args": {"pad": 4}})
  fake_run(root, "prime_cpu_seed-0", 88.0, 73.0, sets=v3, status="preempted")
  return root
