"""What the pair-wise Fourier methods do to Fashion-MNIST's black background
(docs/results/five_epochs.md).

Not a speed benchmark: it prints, for the first N test images, the mean and the RMS of the pixels
that are black (exactly 0) in the original image, after each augmentation and after the
background-lifting corruptions at every severity. If APR-P's outputs already have lifted, textured
backgrounds, a network trained on them has seen what brightness, fog, frost, snow and contrast do
to this dataset, whatever the DC term does.

  python bench/background_stats.py [--num_images=1000]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from freqrobust import corruptions  # noqa: E402
from freqrobust.augment import apr, hybrid  # noqa: E402
from freqrobust.data import fashion_mnist  # noqa: E402

BACKGROUND_CORRUPTIONS = ("brightness", "contrast", "fog", "frost", "snow")


def background_stats(images: np.ndarray, background: np.ndarray) -> tuple[float, float]:
  """(mean, RMS) over the background pixels of a float batch."""
  values = np.asarray(images, np.float64)[background]
  return float(values.mean()), float(np.sqrt(np.mean(values ** 2)))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--num_images", type=int, default=1000)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  if args.num_images < 2:
    parser.error("--num_images must be at least 2 (APR-P needs a partner).")
  images, _ = fashion_mnist.load("test")
  x = images[:args.num_images].astype(np.float32) / 255.
  background = x == 0.0
  key = jax.random.key(args.seed)
  k_pair, k_single, k_corrupt = jax.random.split(key, 3)
  batch = jnp.asarray(x)
  # APR-P as trained (always applied here), the same partners with and without keep_dc.
  rows = [("original", x),
          ("APR-P (partner's amplitude, own phase)", apr.apr_pair(k_pair, batch, 1.0)[0]),
          ("APR-P, keep_dc (own DC amplitude)",
           apr.apr_pair(k_pair, batch, 1.0, keep_dc=True)[0]),
          ("APR-S (recombined with an augmented copy, p = 1/2)",
           jax.vmap(apr.apr_single)(jax.random.split(k_single, x.shape[0]), batch)),
          ("APR-S, uint8_wrap=False (clipped cast)",
           jax.vmap(lambda k, v: apr.apr_single(k, v, uint8_wrap=False))(
               jax.random.split(k_single, x.shape[0]), batch)),
          ("HA++-P (own low band APR-P'd + partner's high band)",
           hybrid.hybrid_pair(k_pair, batch, True, 1.0, apr_prob=1.0)[0]),
          ("HA++-P, keep_black", hybrid.hybrid_pair(k_pair, batch, True, 1.0, apr_prob=1.0,
                                                    keep_black=True)[0]),
          ("HA++-S (p = 1/2)",
           jax.vmap(hybrid.hybrid_single)(jax.random.split(k_single, x.shape[0]), batch)),
          ("HA++-S, uint8_wrap=False (clipped casts)",
           jax.vmap(lambda k, v: hybrid.hybrid_single(k, v, uint8_wrap=False))(
               jax.random.split(k_single, x.shape[0]), batch))]
  for name in BACKGROUND_CORRUPTIONS:
    for severity in range(1, 6):
      rows.append((f"{name} s{severity}", corruptions.corrupt(k_corrupt, x, name, severity)))
  print(f"{args.num_images} Fashion-MNIST test images; background = pixels that are 0 in the "
        f"original ({background.mean():.1%} of all pixels); intensities in [0, 1]")
  print(f"| {'view':52s} | background mean | background RMS |")
  print(f"|{'-' * 54}|---:|---:|")
  for label, batch in rows:
    mean, rms = background_stats(np.asarray(batch), background)
    print(f"| {label:52s} | {mean:.3f} | {rms:.3f} |")


if __name__ == "__main__":
  main()
