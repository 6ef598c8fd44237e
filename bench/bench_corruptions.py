"""Throughput of generating corrupted test sets: freqrobust.corruptions against `imagecorruptions`.

    python bench/bench_corruptions.py [--num-images=2000] [--ref-images=20] [--names=a,b]

For every corruption and severity: freqrobust corrupts a batch of --num-images 32x32 RGB uint8
images (one `corrupt` call per set, as the generated data source does; compilation is timed
apart), and the `imagecorruptions` package (the ImageNet-C implementation, per-image NumPy /
SciPy loops, ImageNet parameters) corrupts --ref-images images one by one.

`imagecorruptions` 1.1.2 no longer imports under NumPy 2 / scikit-image 0.26 and needs OpenCV,
which is not installed here. The script shims `np.float_`, skimage's `multichannel` argument and
the few OpenCV calls it makes (SciPy / Pillow stand-ins, see `_cv2_shim`). Corruptions whose
reference time depends on a shimmed OpenCV call in the per-image path are flagged "shim": their
reference figure is not OpenCV's speed, so they are left out of the "comparable" total.
"""
import argparse
import io
import os
import sys
import time
import types

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Corruptions whose per-image reference path calls OpenCV (shimmed here).
SHIMMED = {"defocus_blur": "cv2.filter2D", "frost": "cv2.imread/resize",
           "spatter": "cv2.Canny/distanceTransform/...", "snow": "cv2.cvtColor"}


def _cv2_shim() -> types.ModuleType:
  """The OpenCV calls of imagecorruptions 1.1.2, in SciPy / Pillow / scikit-image."""
  import scipy.ndimage as ndi
  import skimage.feature
  from PIL import Image
  cv2 = types.ModuleType("cv2")
  cv2.INTER_CUBIC, cv2.CV_8U, cv2.DIST_L2, cv2.THRESH_TRUNC = 2, 0, 2, 2
  cv2.COLOR_RGB2GRAY, cv2.COLOR_BGR2BGRA, cv2.COLOR_BGRA2BGR, cv2.COLOR_GRAY2BGRA = 7, 0, 1, 9

  def same_dtype(out, like):
    if like.dtype == np.uint8:
      return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out.astype(like.dtype)

  def gaussian_blur(src, ksize, sigmaX):
    taps = np.arange(ksize[0]) - ksize[0] // 2
    k = np.exp(-taps ** 2 / (2 * sigmaX ** 2))
    k /= k.sum()
    out = ndi.correlate1d(ndi.correlate1d(src.astype(np.float64), k, 0, mode="mirror"), k, 1,
                          mode="mirror")
    return same_dtype(out, src)

  def filter2d(src, ddepth, kernel):
    out = ndi.correlate(src.astype(np.float32), np.asarray(kernel, np.float32), mode="mirror")
    return np.clip(np.round(out), 0, 255).astype(np.uint8) if ddepth == 0 else same_dtype(
        out, src)

  def resize(src, dsize, interpolation=None):
    return np.asarray(Image.fromarray(src).resize(tuple(dsize), Image.BICUBIC))

  def imread(path):
    return np.asarray(Image.open(path).convert("RGB"))[..., ::-1].copy()

  def cvt_color(src, code):
    if code == cv2.COLOR_RGB2GRAY:
      return src[..., 0] * 0.299 + src[..., 1] * 0.587 + src[..., 2] * 0.114
    if code == cv2.COLOR_GRAY2BGRA:
      return np.concatenate([np.stack([src] * 3, -1), np.ones_like(src)[..., None]], -1)
    if code == cv2.COLOR_BGR2BGRA:
      return np.concatenate([src, np.ones_like(src[..., :1])], -1)
    return src[..., :3]

  def canny(img, low, high):
    return skimage.feature.canny(img.astype(float), sigma=0.01, low_threshold=low,
                                 high_threshold=high).astype(np.uint8) * 255

  def distance_transform(src, dist_type, mask_size):
    return ndi.distance_transform_edt(src != 0).astype(np.float32)

  def threshold(src, thresh, maxval, kind):
    return thresh, np.minimum(src, thresh)

  def blur(src, ksize):
    return same_dtype(ndi.uniform_filter(src.astype(np.float32), size=ksize, mode="mirror"), src)

  def equalize_hist(src):
    hist = np.bincount(src.reshape(-1), minlength=256)
    first = np.argmax(hist > 0)
    cdf = np.cumsum(hist)
    scale = 255. / max(src.size - hist[first], 1)
    lut = np.clip(np.round((cdf - hist[first]) * scale), 0, 255).astype(np.uint8)
    return lut[src]

  cv2.GaussianBlur, cv2.filter2D, cv2.resize, cv2.imread = gaussian_blur, filter2d, resize, imread
  cv2.cvtColor, cv2.Canny, cv2.distanceTransform = cvt_color, canny, distance_transform
  cv2.threshold, cv2.blur, cv2.equalizeHist = threshold, blur, equalize_hist
  return cv2


def import_reference():
  """imagecorruptions with the shims it needs under NumPy 2 / scikit-image 0.26, no OpenCV."""
  import skimage.filters
  np.float_ = np.float64  # removed in NumPy 2
  original = skimage.filters.gaussian

  def gaussian(image, sigma=1.0, multichannel=None, **kwargs):
    if multichannel:
      kwargs["channel_axis"] = -1
    kwargs.setdefault("preserve_range", False)
    return original(image, sigma=sigma, **kwargs)
  skimage.filters.gaussian = gaussian
  if "cv2" not in sys.modules:
    try:
      import cv2  # noqa: F401  (real OpenCV, if someone installed it)
    except ImportError:
      sys.modules["cv2"] = _cv2_shim()
  import imagecorruptions
  return imagecorruptions


def test_images(num: int, size: int = 32) -> np.ndarray:
  """Natural 32x32 RGB uint8 images: random crops of scikit-image's sample photographs."""
  import skimage.data
  import skimage.transform
  photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(),
            skimage.data.rocket()]
  rng = np.random.default_rng(0)
  out = np.empty((num, size, size, 3), np.uint8)
  for i in range(num):
    photo = photos[i % len(photos)]
    side = int(rng.integers(64, min(photo.shape[:2])))
    top = int(rng.integers(0, photo.shape[0] - side))
    left = int(rng.integers(0, photo.shape[1] - side))
    crop = skimage.transform.resize(photo[top:top + side, left:left + side], (size, size),
                                    anti_aliasing=True)
    out[i] = np.round(crop * 255).astype(np.uint8)
  return out


def bench_ours(images: np.ndarray, name: str, severities) -> dict:
  import jax
  from freqrobust import corruptions
  key = jax.random.key(0)
  start = time.perf_counter()
  np.asarray(corruptions.corrupt(key, images, name, 1))  # compile + first run
  first = time.perf_counter() - start
  seconds = []
  for severity in severities:
    start = time.perf_counter()
    out = corruptions.corrupt(jax.random.fold_in(key, severity), images, name, severity)
    np.asarray(out)  # wait for the device
    seconds.append(time.perf_counter() - start)
  return {"first_call_s": first, "seconds": seconds,
          "images_per_s": len(images) * len(severities) / sum(seconds)}


def bench_reference(reference, images: np.ndarray, name: str, severities) -> dict:
  start = time.perf_counter()
  for severity in severities:
    for image in images:
      reference.corrupt(image, severity=severity, corruption_name=name)
  seconds = time.perf_counter() - start
  return {"seconds": seconds, "images_per_s": len(images) * len(severities) / seconds}


def bench_generated_fashion_mnist(num_examples: int, cache_dir: str) -> None:
  """Times the `generated` data source making Fashion-MNIST-C (75 sets) into `cache_dir`."""
  import ml_collections
  from freqrobust import corruptions
  from freqrobust.data import corrupted
  config = ml_collections.ConfigDict({
      "data": {"dataset": "fashion_mnist", "data_dir": ""},
      "corruptions": {"cache_dir": cache_dir, "num_examples": num_examples, "seed": 0}})
  clean = corrupted.clean_test_set(config)
  total = time.perf_counter()
  for name in corruptions.CORRUPTIONS:
    start = time.perf_counter()
    for severity in corruptions.SEVERITIES:
      corrupted.load_generated(config, name, severity, clean=clean)
    print(f"  {name:18s} {time.perf_counter() - start:6.1f} s", flush=True)
  total = time.perf_counter() - total
  print(f"75 sets x {len(clean[0])} images: {total:.1f} s "
        f"({75 * len(clean[0]) / total:.0f} img/s, compilation and cache writes included)")
  start = time.perf_counter()
  for name in corruptions.CORRUPTIONS:
    for severity in corruptions.SEVERITIES:
      corrupted.load_generated(config, name, severity, clean=clean)
  print(f"reading the 75 sets back from the cache: {time.perf_counter() - start:.2f} s")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--num-images", type=int, default=2000,
                      help="images per set for freqrobust (one batch per set)")
  parser.add_argument("--ref-images", type=int, default=20,
                      help="images per set for imagecorruptions (per-image loop)")
  parser.add_argument("--names", default="", help="comma-separated subset (default: all 19)")
  parser.add_argument("--skip-reference", action="store_true")
  parser.add_argument("--fashion-mnist-c", type=int, default=-1, metavar="N",
                      help="instead: time generating Fashion-MNIST-C with N test images "
                           "(0 = all 10 000) into a fresh temporary cache")
  args = parser.parse_args()
  if args.fashion_mnist_c >= 0:
    import tempfile
    with tempfile.TemporaryDirectory() as cache_dir:
      bench_generated_fashion_mnist(args.fashion_mnist_c, cache_dir)
    return

  from freqrobust import corruptions
  names = args.names.split(",") if args.names else list(corruptions.ALL_CORRUPTIONS)
  severities = corruptions.SEVERITIES
  images = test_images(max(args.num_images, args.ref_images))
  reference = None if args.skip_reference else import_reference()
  print(f"freqrobust: {args.num_images} images per set (one batch); imagecorruptions: "
        f"{args.ref_images} per set, one by one; 32x32x3 uint8; each corruption timed for both "
        "back to back, so that both see the same machine load")
  ours, ref = {}, {}
  for name in names:
    ours[name] = bench_ours(images[:args.num_images], name, severities)
    line = (f"  {name:18s} freqrobust {ours[name]['images_per_s']:8.0f} img/s (first call "
            f"incl. compile {ours[name]['first_call_s']:.1f} s)")
    if reference is not None:
      ref[name] = bench_reference(reference, images[:args.ref_images], name, severities)
      line += f"  imagecorruptions {ref[name]['images_per_s']:8.1f} img/s"
    print(line, flush=True)

  print("\n| corruption | freqrobust img/s | first call s | imagecorruptions img/s | speed-up |"
        " note |")
  print("|---|---|---|---|---|---|")
  for name in names:
    r = ref.get(name) if ref else None
    speedup = ours[name]["images_per_s"] / r["images_per_s"] if r else float("nan")
    note = f"shim: {SHIMMED[name]}" if name in SHIMMED else ""
    ref_text = f"{r['images_per_s']:.1f}" if r else "n/a"
    print(f"| {name} | {ours[name]['images_per_s']:.0f} | {ours[name]['first_call_s']:.1f} | "
          f"{ref_text} | {speedup:.1f}x | {note} |")

  def totals(subset):
    # Time to make all sets of `subset` with N images each: sum of N / throughput per set.
    n = args.num_images
    ours_s = sum(n * len(severities) / ours[c]["images_per_s"] for c in subset)
    ours_with_compile = ours_s + sum(ours[c]["first_call_s"] for c in subset)
    line = (f"{len(subset)} corruptions x 5 severities x {n} images: freqrobust "
            f"{ours_s:.1f} s ({ours_with_compile:.1f} s with compilation)")
    if ref:
      ref_s = sum(n * len(severities) / ref[c]["images_per_s"] for c in subset)
      line += (f", imagecorruptions {ref_s:.0f} s -> overall speed-up {ref_s / ours_s:.1f}x "
               f"({ref_s / ours_with_compile:.1f}x with compilation)")
    print(line)

  benchmark = [c for c in names if c in corruptions.CORRUPTIONS]
  print()
  if benchmark:
    print("The 15 benchmark corruptions (75 sets):" if len(benchmark) == 15 else
          f"{len(benchmark)} benchmark corruptions:")
    totals(benchmark)
  comparable = [c for c in names if c not in SHIMMED]
  print("Comparable (no shimmed OpenCV in the reference path):")
  totals(comparable)


if __name__ == "__main__":
  main()
