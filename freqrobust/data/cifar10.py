"""CIFAR-10 (and CIFAR-10-C) through TensorFlow Datasets (needs a prepared TFDS data dir or a
network).

TFDS prepares a dataset once (download, then conversion to its own files under
<tfds_data_dir>/<name>/<config>/<version>/) and reads the prepared files afterwards. Without a
network it can prepare from the original archive placed by hand in
<tfds_data_dir>/downloads/manual/ (checked against TFDS's registered checksum).
"""
import os
import socket
import threading
import urllib.parse
import urllib.request
from typing import Any, Iterable, Tuple

import numpy as np

from freqrobust.data.errors import DatasetError

# How long the connectivity check waits for the download host (DNS included) before calling the
# machine offline; TFDS's own download retries for minutes there (issue #27).
PROBE_TIMEOUT_S = 3.0
# Set to 1 to skip the check (a network this check does not see, e.g. a proxy it cannot use).
SKIP_PROBE_ENV = "FREQROBUST_SKIP_NETWORK_CHECK"


def _summary(error: BaseException, limit: int = 400) -> str:
  text = " ".join(str(error).split())
  return f"{type(error).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


def _archives(builder: Any) -> str:
  """'name (from url)' of each original archive TFDS downloads for `builder`."""
  try:
    infos = builder.url_infos or {}
  except Exception:  # only for the message; never hide the real error behind this one
    infos = {}
  return ", ".join(f"{info.filename or url.rsplit('/', 1)[-1]} (from {url})"
                   for url, info in sorted(infos.items())) or "its original archive"


def _probe_target(url: str) -> Tuple[str, int]:
  """(host, port) a download of `url` connects to first: its proxy when one is set for it."""
  parts = urllib.parse.urlsplit(url)
  host = parts.hostname or ""
  port = parts.port or (443 if parts.scheme == "https" else 80)
  proxy = urllib.request.getproxies().get(parts.scheme)
  if proxy and host and not urllib.request.proxy_bypass(host):
    proxy_parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if proxy_parts.hostname:
      return proxy_parts.hostname, proxy_parts.port or 80
  return host, port


def _connect(host: str, port: int, timeout: float) -> None:
  socket.create_connection((host, port), timeout=timeout).close()


def network_unreachable(urls: Iterable[str], timeout: float = PROBE_TIMEOUT_S) -> str:
  """'' when every host (or proxy) the downloads of `urls` connect to answers a TCP connect
  within `timeout` seconds in all; else why not (a DNS failure, a refused or timed-out
  connection). The connects run in a daemon thread so that a slow DNS lookup cannot hold the
  caller past `timeout`."""
  targets = sorted({_probe_target(u) for u in urls if u.startswith(("http://", "https://"))})
  targets = [t for t in targets if t[0]]
  if not targets:
    return ""
  failures = []

  def probe():
    for host, port in targets:
      try:
        _connect(host, port, timeout)
      except OSError as error:
        failures.append(f"{host}:{port}: {type(error).__name__}: {error}")
        return
    failures.append("")

  thread = threading.Thread(target=probe, name="freqrobust-network-check", daemon=True)
  thread.start()
  thread.join(timeout)
  if not failures:
    where = ", ".join(f"{h}:{p}" for h, p in targets)
    return f"no answer from {where} within {timeout:g} s"
  return failures[0]


def _needs_network(builder: Any, data_root: str) -> bool:
  """Whether preparing `builder` will download: not when every original archive is in the
  manual folder, nor when download_and_prepare is not TFDS's own (tfds.testing.mock_data makes
  it a no-op)."""
  if os.environ.get(SKIP_PROBE_ENV, "").strip() not in ("", "0"):
    return False
  prepare = getattr(type(builder), "download_and_prepare", None)
  if not getattr(prepare, "__module__", "").startswith("tensorflow_datasets.core"):
    return False
  try:
    infos = dict(builder.url_infos or {})
  except Exception:
    return False
  manual = os.path.join(data_root, "downloads", "manual")
  return any(not os.path.isfile(os.path.join(manual, info.filename or url.rsplit("/", 1)[-1]))
             for url, info in infos.items())


def check_network(builder: Any, dataset: str, data_root: str, hint: str = "") -> None:
  """Before TFDS's download (whose retries take minutes on a machine without a network): a
  connect to the download host with a short timeout; DatasetError naming the fixes at once when
  it fails. Only called when `dataset` is not prepared in `data_root`; skipped when the archives
  are in the manual folder (prepared offline) or FREQROBUST_SKIP_NETWORK_CHECK=1."""
  if not _needs_network(builder, data_root):
    return
  urls = list(dict(builder.url_infos or {}))
  reason = network_unreachable(urls, PROBE_TIMEOUT_S)
  if reason:
    raise DatasetError(not_available_message(
        dataset, data_root,
        f"no network: the download host did not answer, {reason}; checked with a "
        f"{PROBE_TIMEOUT_S:g} s limit instead of waiting minutes in TFDS's download retries. A "
        f"prepared TFDS folder needs no network. If this machine does reach the network (e.g. "
        f"through a proxy this check cannot use), set {SKIP_PROBE_ENV}=1",
        _archives(builder), hint))


def not_available_message(dataset: str, data_root: str, cause: str, archives: str,
                          hint: str = "") -> str:
  """The one error for a TFDS dataset that is neither prepared nor preparable here."""
  return (
      f"{dataset} is not prepared in the TFDS data dir {data_root} (config.data.tfds_data_dir; "
      f"'' means TFDS's default, $TFDS_DATA_DIR or ~/tensorflow_datasets), and TFDS could not "
      f"download and prepare it here ({cause}). Fix, one of: (1) on a machine with a network run "
      f"once `python -c \"import tensorflow_datasets as tfds; tfds.builder('{dataset}', "
      f"data_dir='DIR').download_and_prepare()\"`, copy DIR to this machine and pass "
      f"--config.data.tfds_data_dir=DIR; (2) copy an already prepared TFDS folder (one holding "
      f"{dataset.split('/')[0]}/) here and pass --config.data.tfds_data_dir to it; (3) put the "
      f"original archive {archives} into {data_root}/downloads/manual/ and rerun (TFDS prepares "
      f"it offline after checking its checksum). {hint}").strip()


def load_tfds_numpy(dataset: str, split: str, data_dir: str = "", download: bool = True,
                    hint: str = "") -> Tuple[np.ndarray, np.ndarray]:
  """(uint8 images, int32 labels) of a supervised TFDS split, read in batches of 1000.

  Prepares the dataset first when `download` and it is not prepared in `data_dir` ('' = TFDS's
  default). Raises DatasetError, naming the dataset, the data dir and the fixes, when it is
  neither prepared nor preparable (no network), or when the prepared files cannot be read.
  Batches rather than batch_size=-1 (one tensor): TF 2.21 aborts on the latter under
  tfds.testing.mock_data, and the result is the same. `hint` adds a dataset-specific fix.
  """
  import tensorflow_datasets as tfds  # Imported lazily: TFDS pulls in TensorFlow.
  try:
    builder = tfds.builder(dataset, data_dir=data_dir or None)
  except Exception as e:  # unknown name or config
    raise DatasetError(f"TFDS does not know {dataset!r} ({_summary(e)}). {hint}".strip()) from e
  data_root = str(builder.data_dir_root)
  if not builder.is_prepared():
    if not download:
      raise DatasetError(not_available_message(
          dataset, data_root, "downloading is off", _archives(builder), hint))
    check_network(builder, dataset, data_root, hint)
    try:
      builder.download_and_prepare()
    except ImportError as e:  # e.g. importlib_resources, which TFDS 4.9.10 needs to prepare
      raise DatasetError(
          f"Preparing {dataset} in the TFDS data dir {data_root} needs the Python package "
          f"{e.name or e}, which is not installed: `pip install -r requirements.txt` (or "
          f"`pip install {e.name or '<package>'}`).") from e
    except Exception as e:  # TFDS raises many kinds (no network, bad checksum, ...)
      # One clear error rather than TFDS's deep traceback; the cause is summarised in it.
      raise DatasetError(not_available_message(
          dataset, data_root, _summary(e), _archives(builder), hint)) from None
  try:
    data = builder.as_dataset(split=split, batch_size=1000, as_supervised=True,
                              shuffle_files=False)
    batches = list(tfds.as_numpy(data))
  except Exception as e:
    raise DatasetError(
        f"{dataset} split {split!r} could not be read from the prepared TFDS folder "
        f"{builder.data_dir} ({_summary(e)}). If that folder is damaged, move it aside and rerun "
        f"to prepare it again (needs a network, or the original archive "
        f"{_archives(builder)} in {data_root}/downloads/manual/). {hint}".strip()) from e
  if not batches:
    raise DatasetError(f"{dataset} split {split!r} in {builder.data_dir} holds no examples.")
  images = np.concatenate([b[0] for b in batches]).astype(np.uint8)
  labels = np.concatenate([b[1] for b in batches]).astype(np.int32)
  return images, labels


def load(split: str, tfds_data_dir: str = "",
         download: bool = True) -> Tuple[np.ndarray, np.ndarray]:
  """Returns (images uint8 (N, 32, 32, 3), labels int32 (N,)) for split 'train' or 'test'."""
  if split not in ("train", "test"):
    raise ValueError(f"CIFAR-10 split {split!r}; valid: train, test.")
  return load_tfds_numpy("cifar10", split, tfds_data_dir, download,
                         hint="Offline, config.data.dataset='fashion_mnist' needs no download.")
