"""The one parser of config argument strings (configs/args.py), as configs/paper.py,
configs/baselines.py and launch/sweep.py use it: every mistake a UserError naming what is valid."""
import os
import subprocess
import sys

import pytest

from configs import args, baselines, explain, paper
from freqrobust.augment import registry
from freqrobust.workdir import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse(arg):
  return args.parse(arg, "configs/x.py", head="table", heads=("t1", "t2"), flags=("cpu",),
                    options={"seed": int, "lambda": float}, listing="`x` lists them")


def test_parse_splits_head_words_flags_and_options():
  parsed = _parse(" t2 , nfd,seed=3, cpu,lambda=0.5,resnet18 ")
  assert parsed.head == "t2" and parsed.words == ("nfd", "resnet18")
  assert parsed.flags == {"cpu"} and parsed.options == {"seed": 3, "lambda": 0.5}
  assert type(parsed.options["seed"]) is int
  assert _parse("t1").options == {} and not _parse("t1").flags
  lmh = args.parse("t1,lmh=011,seed=2", "configs/x.py", head="table", heads=("t1",),
                   options={"seed": int}, word_keys=("lmh",))
  assert lmh.words == ("lmh=011",) and lmh.options == {"seed": 2}


@pytest.mark.parametrize("arg, match", [
    ("", "argument string is empty.*table, one of: t1, t2"),
    ("t9,nfd", "unknown table 't9'; valid: t1, t2"),
    ("seed=1,t1", "unknown table 'seed=1' \\(the table comes first\\)"),
    ("t1,seed=one", "'seed=one': seed takes an integer"),
    ("t1,lambda=x", "lambda takes a number"),
    ("t1,epochs=3", "unknown option 'epochs=3'; options: cpu, seed=N, lambda=X"),
    ("t1,seed=1,seed=2", "seed= is given twice"),
    ("t1,cpu,cpu", "'cpu' is given twice"),
])
def test_parse_errors_name_the_file_string_and_valid_values(arg, match):
  with pytest.raises(UserError, match=match) as error:
    _parse(arg)
  assert str(error.value).startswith(f"--config=configs/x.py:{arg}: ")
  assert str(error.value).endswith("`x` lists them.")
  assert "\n" not in str(error.value)


def test_baselines_errors_are_user_errors_naming_the_registry():
  with pytest.raises(UserError) as error:
    baselines.get_config("nosuch,cpu")
  for name in list(registry.BASELINES) + ["natural", "paper_both_att"]:
    assert name in str(error.value)  # derived from the registry: new methods appear here
  with pytest.raises(UserError, match="unknown argument 'vgg19'.*resnet18, vgg16"):
    baselines.get_config("augmix,vgg19")
  with pytest.raises(UserError, match="two backbones"):
    baselines.get_config("augmix,vgg16,resnet18")
  with pytest.raises(UserError, match="seed takes an integer"):
    baselines.get_config("augmix,seed=x")
  with pytest.raises(UserError, match="no table 'table3'.*all"):
    baselines.runs("table3")
  config = baselines.get_config("prime,seed=2,cpu")
  assert (config.method, config.seed, config.model.name) == ("prime", 2, "small_resnet")


def test_paper_errors_are_user_errors():
  with pytest.raises(UserError, match="unknown table 'table9'; valid: table1, table2, table3"):
    paper.get_config("table9,nat")
  with pytest.raises(UserError, match="unknown argument 'everything'.*both_att.*seed=N"):
    paper.get_config("table3,everything")
  with pytest.raises(UserError, match="one column"):
    paper.get_config("table3,nfd,sup")
  assert paper.get_config("table2,vgg16_bn,lmh=011").aps.configuration == "LMH=011"
  with pytest.raises(UserError, match="unknown argument 'lmh=2'"):
    paper.get_config("table2,lmh=2")
  with pytest.raises(UserError, match="no table 'all'.*table1, table2"):
    paper.runs("all")
  config = paper.get_config("table4,learnable,lambda=50,seed=1,cpu")
  assert (config.aps.aux_weight, config.seed, config.aps.configuration) == (50.0, 1, "learnable")
  assert config.data.dataset == "fashion_mnist"
  for table in paper.TABLES:  # every run the sweep builds still parses
    for arg in paper.runs(table, cpu=True, seeds=(0, 1)):
      paper.get_config(arg)


def test_explain_rows_differ_only_in_labels_and_batch_norm():
  """configs/explain.py's HFC rows: the same memorisable protocol, the four combinations of
  shuffled labels and BatchNorm; bad arguments are UserErrors naming the rows."""
  configs = {row: explain.get_config(f"{row},seed=2") for row in explain.ROWS}
  natural = configs["natural"].to_dict()
  for row, config in configs.items():
    shuffled, batch_norm, _ = explain.ROWS[row]
    assert (config.data.shuffle_labels, config.model.batch_norm) == (shuffled, batch_norm)
    assert config.seed == 2 and config.data.train_examples == explain.TRAIN_EXAMPLES
    assert config.train.keep_every_epochs > 0 and not config.augment.crop
    other = config.to_dict()
    other["data"]["shuffle_labels"] = natural["data"]["shuffle_labels"]
    other["model"]["batch_norm"] = natural["model"]["batch_norm"]
    assert other == natural, row
  assert explain.get_config("natural,cpu").to_dict() == explain.get_config("natural").to_dict()
  with pytest.raises(UserError, match="unknown .*'shuffeld'.*natural, shuffled"):
    explain.get_config("shuffeld")
  with pytest.raises(UserError, match="unknown argument 'vgg16'"):
    explain.get_config("natural,vgg16")
  assert explain.runs("hfc", seeds=(0, 1))[4] == "natural,seed=1"
  with pytest.raises(UserError, match="no table 'all'"):
    explain.runs("all")


def test_a_backbone_that_cannot_drop_batch_norm_is_refused_before_training():
  from freqrobust import experiment
  config = baselines.get_config("natural,cpu")
  config.model.name = "vgg16"
  config.model.batch_norm = False
  with pytest.raises(UserError, match="config.model.batch_norm=False is invalid.*small_resnet"):
    experiment.validate(config)
  config.model.name = "small_resnet"
  experiment.validate(config)


@pytest.mark.parametrize("flags, own, other", [
    (["--table=table9"], "configs/paper.py", None),
    (["--table=all"], "configs/paper.py", "--config_file=baselines"),
    (["--config_file=baselines", "--table=table3"], "configs/baselines.py",
     "--config_file=paper"),
])
def test_sweep_unknown_table_lists_the_tables_of_both_config_files(tmp_path, flags, own, other):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  out = subprocess.run([sys.executable, "launch/sweep.py", *flags, f"--root={tmp_path}/r"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode == 2, out.stderr[-2000:]
  assert "Traceback" not in out.stderr and "KeyError" not in out.stderr
  message = out.stderr.strip()
  assert message.startswith("Error: --table=") and "\n" not in message, message
  assert f"{own} (--config_file=" in message
  assert "table1, table2, table3, table4" in message and "(configs/baselines.py): all" in message
  if other:
    assert f"add {other}" in message
  assert not os.path.exists(tmp_path / "r")  # nothing created
