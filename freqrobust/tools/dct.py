"""`analyze dct`: frequency attribution of predictions (Wang et al. 2020): the drop of the
true-class logit when one DCT band (bands by u + v from the low corner) is replaced by a baseline
(zeros or noise), per band and class, averaged over images."""
from __future__ import annotations

from absl import flags
import jax

from freqrobust.analysis import dct_attribution
from freqrobust.tools import base
from freqrobust.tools.occlusion import CLASS_NAMES


class DCT(base.Tool):
  name = "dct"
  summary = "frequency attribution: drop of the class logit per DCT band replaced (Wang et al.)"
  default_images = dct_attribution.DEFAULT_NUM_IMAGES

  def define_flags(self, fv):
    base.define_once(flags.DEFINE_integer, "num_bands", 8, "Number of bands (groups of the "
                     "diagonals u + v).", flag_values=fv)
    flags.DEFINE_enum("replace_with", "zeros", ["zeros", "noise"], "What replaces a band.",
                      flag_values=fv)

  def run(self, values, context):
    run = context.trained()
    images, labels = base.load_test_images(run.config, base.num_images(values, self))
    return dct_attribution.run_dct_attribution(
        context.out_dir, run.predict, images, labels, values.num_bands, values.replace_with,
        jax.random.key(values.seed), CLASS_NAMES.get(run.config.data.dataset),
        base.batch_size(values, context), values.progress)
