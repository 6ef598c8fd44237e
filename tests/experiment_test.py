"""Building a run from its config (freqrobust/experiment.py): each component checks its own
fields (the model in models/, the schedule in schedules.py, the paper's method in augment/aps.py,
a baseline in its dataclass, the evaluations in their evaluators), and experiment.validate and
build_method call them."""
import pytest

from configs import baselines, default
from freqrobust import ema, experiment, models, schedules
from freqrobust.augment import aps, registry
from freqrobust.workdir import UserError


def test_each_component_checks_its_own_fields():
  config = default.get_config()
  config.model.small_widths = (16, 0, 64)
  with pytest.raises(UserError, match=r"config\.model\.small_widths=\(16, 0, 64\) is invalid"):
    models.check_config(config.model)
  with pytest.raises(UserError, match=r"config\.model\.small_widths"):
    experiment.validate(config)
  config.model.name = "resnet18"  # The small ResNet's fields are its own: not checked here.
  models.check_config(config.model)
  config = default.get_config()
  config.train.warmup_epochs = 1000.0
  with pytest.raises(UserError, match=r"config\.train\.warmup_epochs=1000\.0 .* num_epochs=90"):
    schedules.check_config(config.train)
  config = default.get_config()
  config.aps.aux_average = "mean"
  with pytest.raises(UserError, match=r"config\.aps\.aux_average='mean' is invalid"):
    aps.check_config(config.aps, config.model.attention)
  with pytest.raises(UserError, match=r"config\.aps\.aux_average"):
    experiment.resolve_config(config)
  config.method = "augmix"  # A baseline reads config.method_args, not config.aps.
  config.method_args = baselines._defaults(registry.BASELINES["augmix"])
  experiment.resolve_config(config)
  config.method_args.width = 0
  with pytest.raises(UserError, match=r"config\.method_args \(augmix\)"):
    experiment.resolve_config(config)


def test_every_method_is_a_registry_entry_built_from_the_run_config():
  config = experiment.resolve_config(baselines.get_config("paper_both_att,cpu"))
  method = experiment.build_method(config)
  assert type(method) is registry.METHODS["paper"] is aps.PaperMethod
  assert method.aps.learnable and method.augment.nfd  # From config.aps and config.augment.
  config.method = "nosuch"
  with pytest.raises(UserError, match=r"config\.method='nosuch'; valid: paper, gaussian"):
    experiment.build_method(config)
  config = experiment.resolve_config(baselines.get_config("gaussian,cpu"))
  config.model.attention = "basic"
  with pytest.raises(UserError, match="baseline without APS"):
    experiment.build_method(config)


def test_the_moved_parts_keep_their_names_in_experiment():
  assert experiment.make_optimizer is schedules.make_optimizer
  assert experiment.SCHEDULES == schedules.SCHEDULES
  assert experiment.ema_params is ema.ema_params and experiment.EmaState is ema.EmaState
