"""The published architectures `freqrobust.convert` imports, and how each one's PyTorch keys map
onto this project's Flax variables: `ARCHS` (arch name -> `Arch`: the Flax model's config fields,
its key layout, its input normalisation) and `LAYOUTS` (layout -> rules from a torch module name to
a Flax module path), with the constants of the key accounting."""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Dict, List, Tuple

# The normalisation RobustBench's DeepMind models apply inside the model (buffers that are not
# saved in their checkpoints): CIFAR-10's per-channel mean and std.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)
IDENTITY_MEAN = (0.0, 0.0, 0.0)
IDENTITY_STD = (1.0, 1.0, 1.0)

# Key suffixes no arch has a Flax variable for (BatchNorm's step counter).
IGNORED_SUFFIXES = ("num_batches_tracked",)
# Buffers holding the input normalisation (RobustBench's wrappers: mu/sigma; some DeepMind
# checkpoints: mean/std), read into config.model.input_mean/input_std.
NORMALISATION_KEYS = (("mu", "sigma"), ("mean", "std"))
# Top-level containers a training script wraps the weights in, tried in this order.
NESTING_KEYS = ("state_dict", "last")
# Prefixes of DataParallel (`module.`) and of wrapper modules (`model.`), stripped only at the
# start of a key, repeatedly (`module.model.conv1.weight` -> `conv1.weight`).
STRIPPED_PREFIXES = ("module.", "model.")

# torch module name -> Flax module path, one rule list per key layout.
Rule = Tuple[str, Callable[[re.Match], Tuple[str, ...]]]
_WRN_TRADES_BLOCK = {"bn1": "bn0", "conv1": "conv0", "bn2": "bn1", "conv2": "conv1",
                     "convShortcut": "shortcut"}
_WRN_DM_BLOCK = {"batchnorm_0": "bn0", "conv_0": "conv0", "batchnorm_1": "bn1",
                 "conv_1": "conv1", "shortcut": "shortcut"}
_PREACT_BLOCK = {"bn1": "bn0", "conv1": "conv0", "bn2": "bn1", "conv2": "conv1",
                 "shortcut.0": "shortcut"}
_PREACT_DM_BLOCK = {"batchnorm_0": "bn0", "conv_2d_1": "conv0", "batchnorm_1": "bn1",
                    "conv_2d_2": "conv1", "shortcut": "shortcut"}
_RESNET_BLOCK = {"conv1": "Conv_0", "bn1": "BatchNorm_0", "conv2": "Conv_1", "bn2": "BatchNorm_1",
                 "shortcut.0": "proj_conv", "shortcut.1": "proj_bn"}
_STEM = ("stem", "semantic", "conv")


def _alternatives(names) -> str:
  return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


LAYOUTS: Dict[str, List[Rule]] = {
    # RobustBench's wide_resnet.WideResNet (TRADES): conv1, block{1,2,3}.layer.{i}.*, bn1, fc.
    "wrn_trades": [
        (r"conv1", lambda m: _STEM),
        (rf"block([123])\.layer\.(\d+)\.({_alternatives(_WRN_TRADES_BLOCK)})",
         lambda m: (f"group{int(m[1]) - 1}_block{int(m[2])}", _WRN_TRADES_BLOCK[m[3]])),
        (r"bn1", lambda m: ("final_bn",)),
        (r"fc", lambda m: ("head",)),
    ],
    # DeepMind's DMWideResNet: init_conv, layer.{g}.block.{i}.*, batchnorm, logits.
    "wrn_dm": [
        (r"init_conv", lambda m: _STEM),
        (rf"layer\.([012])\.block\.(\d+)\.({_alternatives(_WRN_DM_BLOCK)})",
         lambda m: (f"group{int(m[1])}_block{int(m[2])}", _WRN_DM_BLOCK[m[3]])),
        (r"batchnorm", lambda m: ("final_bn",)),
        (r"logits", lambda m: ("head",)),
    ],
    # RobustBench's resnet.PreActResNet: conv1, layer{1..4}.{i}.*, bn (bn_before_fc), linear.
    "preact": [
        (r"conv1", lambda m: _STEM),
        (rf"layer([1234])\.(\d+)\.({_alternatives(_PREACT_BLOCK)})",
         lambda m: (f"stage{int(m[1]) - 1}_block{int(m[2])}", _PREACT_BLOCK[m[3]])),
        (r"bn", lambda m: ("final_bn",)),
        (r"linear", lambda m: ("head",)),
    ],
    # DeepMind's DMPreActResNet: conv_2d, layer_{0..3}.{i}.*, batchnorm, logits.
    "preact_dm": [
        (r"conv_2d", lambda m: _STEM),
        (rf"layer_([0123])\.(\d+)\.({_alternatives(_PREACT_DM_BLOCK)})",
         lambda m: (f"stage{int(m[1])}_block{int(m[2])}", _PREACT_DM_BLOCK[m[3]])),
        (r"batchnorm", lambda m: ("final_bn",)),
        (r"logits", lambda m: ("head",)),
    ],
    # RobustBench's resnet.ResNet18: conv1, bn1, layer{1..4}.{i}.*, linear. Flax numbers the
    # BasicBlocks across stages (two per stage).
    "resnet18": [
        (r"conv1", lambda m: _STEM),
        (r"bn1", lambda m: ("stem", "semantic", "bn")),
        (rf"layer([1234])\.([01])\.({_alternatives(_RESNET_BLOCK)})",
         lambda m: (f"BasicBlock_{2 * (int(m[1]) - 1) + int(m[2])}", _RESNET_BLOCK[m[3]])),
        (r"linear", lambda m: ("head",)),
    ],
}


@dataclasses.dataclass(frozen=True)
class Arch:
  """A published architecture: the Flax model it becomes and how its keys map."""
  model: Dict[str, Any]  # config.model fields (name and variant)
  layout: str  # a key of LAYOUTS
  mean: Tuple[float, ...]  # input normalisation when the checkpoint has none
  std: Tuple[float, ...]
  ignored_prefixes: Tuple[str, ...] = ()  # keys of modules the forward pass never uses
  description: str = ""


ARCHS: Dict[str, Arch] = {
    "wrn": Arch(dict(name="wrn", padding="pytorch", activation="relu"), "wrn_trades",
                IDENTITY_MEAN, IDENTITY_STD, ignored_prefixes=("sub_block1.",),
                description="TRADES-style WideResNet (robustbench wide_resnet.WideResNet): ReLU, "
                "PyTorch padding; --depth/--width; `sub_block1` (built, never called) ignored"),
    "dm_wrn": Arch(dict(name="wrn", padding="same", activation="swish"), "wrn_dm",
                   CIFAR10_MEAN, CIFAR10_STD,
                   description="DeepMind's WideResNet (robustbench dm_wide_resnet.DMWideResNet): "
                   "Swish (--activation=relu for the ReLU ones), SAME stride-2 padding, CIFAR-10 "
                   "mean/std inside; --depth/--width"),
    "preact_resnet18": Arch(dict(name="preact_resnet18", padding="pytorch", activation="relu",
                                 preact_shortcut="input", preact_final_bn=False), "preact",
                            IDENTITY_MEAN, IDENTITY_STD,
                            description="robustbench resnet.PreActResNet(PreActBlock): 1x1 "
                            "shortcut of the block's raw input, no final BN"),
    "preact_resnet18_v2": Arch(dict(name="preact_resnet18", padding="pytorch", activation="relu",
                                    preact_shortcut="activated", preact_final_bn=True), "preact",
                               IDENTITY_MEAN, IDENTITY_STD,
                               description="robustbench resnet.PreActResNet(PreActBlockV2, "
                               "bn_before_fc=True): 1x1 shortcut of the activated input, final "
                               "BN"),
    "dm_preact_resnet18": Arch(dict(name="preact_resnet18", padding="same", activation="swish",
                                    preact_shortcut="input_3x3", preact_final_bn=True),
                               "preact_dm", CIFAR10_MEAN, CIFAR10_STD,
                               description="DeepMind's PreActResNet-18 (robustbench "
                               "dm_wide_resnet.DMPreActResNet): 3x3 shortcut of the raw input, "
                               "Swish, SAME stride-2 padding, CIFAR-10 mean/std inside"),
    "resnet18": Arch(dict(name="resnet18", padding="pytorch"), "resnet18",
                     IDENTITY_MEAN, IDENTITY_STD,
                     description="robustbench resnet.ResNet18 (also torchvision-style CIFAR "
                     "ResNet-18): PyTorch padding"),
}
