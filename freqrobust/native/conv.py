"""Convolutions through oneDNN on the CPU (`config.train.conv_backend`), as a stand-in for
`lax.conv_general_dilated` that Flax's `nn.Conv` takes (`conv_general_dilated=`).

jaxlib's CPU convolutions (YNNPACK and Eigen) are slower than oneDNN's, which PyTorch runs; this
module calls oneDNN through three jax.ffi handlers (forward, backward-data, backward-weights:
`conv_onednn.cc`, built by `build.sh` into build/native/) on NHWC float32 activations and HWIO
float32 weights, with any stride and any (asymmetric) padding, wrapped in `jax.custom_vjp`s that
close under differentiation (each handler's gradient is made of the other two, so gradients of
gradients work). Every other convolution (bfloat16, dilated, grouped, another layout) goes to
XLA, as does, under "auto", each case of this CPU vendor's `XLA_WINS` table (measured per vendor;
FREQROBUST_CONV_TABLE=amd|intel|none picks another).

Backends (`BACKENDS`): "xla" (lax's convolution), "onednn" (oneDNN for every convolution it
covers; an error when the library is not built or JAX is not on the CPU), "auto" (oneDNN on a
single CPU device when the library loads, but for the table's cases; XLA elsewhere: XLA does not
partition a custom call over several devices, each would compute the whole batch).
`select(backend)` gives the stand-in (None for XLA) and prints one INFO line saying which runs and
why. The library is loaded on first use; FREQROBUST_ONEDNN_LIB names another file, or "off" to
run as if it were not built.
"""
import ctypes
import functools
import os
import threading
from typing import Callable, NamedTuple, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from freqrobust.workdir import UserError

BACKENDS = ("auto", "xla", "onednn")
LIB_ENV = "FREQROBUST_ONEDNN_LIB"
DEFAULT_LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "build", "native", "libfreqrobust_conv.so")
_TARGETS = {"forward": "FreqrobustConvForward", "backward_data": "FreqrobustConvBackwardData",
            "backward_weights": "FreqrobustConvBackwardWeights"}
_KINDS = tuple(_TARGETS)  # The library's counter index of each handler.
_NHWC = ("NHWC", "HWIO", "NHWC")

class Rule(NamedTuple):
  """A case "auto" leaves to XLA: the `handler` ("forward", "backward_data", "backward_weights")
  of convolutions with this `kernel` (h, w), strided or not, whose input is at most `max_size`
  high and wide (None: any size) and has at least `min_channels` channels."""
  handler: str
  kernel: Tuple[int, int]
  strided: bool
  max_size: Optional[int] = None
  min_channels: int = 1

  def covers(self, handler: str, kernel, strided: bool, size: int, channels: int) -> bool:
    return (handler == self.handler and tuple(kernel) == self.kernel and strided == self.strided
            and (self.max_size is None or size <= self.max_size)
            and channels >= self.min_channels)

  def describe(self) -> str:
    where = [f"{self.max_size}x{self.max_size} or smaller"] if self.max_size else []
    where += [f">= {self.min_channels} channels"] if self.min_channels > 1 else []
    return (f"{self.handler.replace('_', '-')} of {self.kernel[0]}x{self.kernel[1]}"
            f"{' strided' if self.strided else ''}" + (f" ({', '.join(where)})" if where else ""))


# The cases "auto" leaves to XLA, per CPU vendor (`table_name`). Each rule is a case XLA ran faster
# than oneDNN 3.2 in bench/bench_conv_backend.py --part=ops (ResNet-18's and the small ResNet's
# convolutions at batch 128; docs/BENCHMARKS.md has the tables). "amd" (AMD EPYC Zen 5): oneDNN
# won every case, 1.3-8.5x, but the strided 1x1 backward-data (4.2 ms on XLA against 13.8).
# "intel" (Intel Xeon, AVX-512, two measurements with nothing else running, which agree): XLA
# also wins ResNet-18's smallest maps, the 4x4 512->512 convolution in all three passes (e.g. forward 37-48 ms against
# 53-99), the strided 3x3 backward-weights at 16x16 and 8x8 with 128-256 input channels (24-46
# against 39-56 ms), the strided 3x3 forward at 8x8 (24-28 against 29-42) and the strided 1x1
# forward with >= 128 channels (2.6-7.0 against 4.8-9.8).
XLA_WINS = {
    "amd": (Rule("backward_data", (1, 1), True),),
    "intel": (Rule("backward_data", (1, 1), True),
              Rule("forward", (1, 1), True, min_channels=128),
              Rule("forward", (3, 3), True, max_size=8),
              Rule("backward_weights", (3, 3), True, max_size=16, min_channels=128),
              Rule("forward", (3, 3), False, max_size=4),
              Rule("backward_data", (3, 3), False, max_size=4),
              Rule("backward_weights", (3, 3), False, max_size=4)),
}
TABLE_ENV = "FREQROBUST_CONV_TABLE"  # "amd", "intel" or "none": another CPU's table, or none.
_VENDORS = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}


@functools.lru_cache(maxsize=None)
def table_name() -> Tuple[str, str]:
  """(the XLA_WINS table "auto" uses here, why): FREQROBUST_CONV_TABLE if set, else the CPU's
  vendor in /proc/cpuinfo; a vendor without a table of its own gets "amd" (the fewest cases)."""
  chosen = os.environ.get(TABLE_ENV, "")
  if chosen:
    if chosen not in (*XLA_WINS, "none"):
      raise UserError(f"{TABLE_ENV}={chosen!r}; valid: {', '.join(XLA_WINS)}, none.")
    return chosen, f"{TABLE_ENV}={chosen}"
  vendor = ""
  try:
    with open("/proc/cpuinfo") as f:
      vendor = next((line.split(":", 1)[1].strip() for line in f
                     if line.startswith("vendor_id")), "")
  except OSError:
    pass
  if vendor in _VENDORS:
    return _VENDORS[vendor], f"CPU vendor {vendor}"
  return "amd", f"CPU vendor {vendor or 'unknown'}, no table of its own"


def xla_handlers(kernel, strided: bool, size: int, channels: int,
                 table: Optional[str] = None) -> Tuple[str, ...]:
  """The handlers of one convolution that "auto" runs on XLA under `table` (default: this CPU's)."""
  rules = XLA_WINS.get(table or table_name()[0], ())
  return tuple(h for h in _KINDS if any(r.covers(h, kernel, strided, size, channels)
                                        for r in rules))


class Geometry(NamedTuple):
  """The static part of one convolution: strides, (top, bottom, left, right) padding, and the
  handlers that run on XLA instead (`XLA_WINS`)."""
  strides: Tuple[int, int]
  padding: Tuple[int, int, int, int]
  on_xla: Tuple[str, ...] = ()

  def attributes(self) -> dict:
    sh, sw = self.strides
    pt, pb, pl, pr = self.padding
    return {k: np.int64(v) for k, v in dict(stride_h=sh, stride_w=sw, pad_top=pt, pad_bottom=pb,
                                             pad_left=pl, pad_right=pr).items()}


# ----------------------------------------------------------------------------- the library

_load_lock = threading.Lock()
_registered = set()  # FFI targets register once per process, however often _load runs again.


@functools.lru_cache(maxsize=None)
def _load() -> Tuple[Optional[ctypes.CDLL], str]:
  """(the library with its handlers registered, a description) or (None, why not)."""
  path = os.environ.get(LIB_ENV, "") or DEFAULT_LIB
  if path.lower() == "off":
    return None, f"{LIB_ENV}=off"
  if not os.path.exists(path):
    return None, (f"{path} is not built (bash freqrobust/native/build.sh, which launch/setup.sh "
                  "runs)")
  with _load_lock:
    # GNU OpenMP reads this when it loads (with the library): idle OpenMP threads sleep rather
    # than spin between convolutions. Spinning took the cores from XLA's own threads: 0.36 CPU
    # s/step against 0.07 with PASSIVE (small ResNet, batch 32, 2 busy cores). A user's value wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
      lib = ctypes.CDLL(path)
    except OSError as err:
      return None, f"{path} does not load: {err}"
    message = ctypes.create_string_buffer(512)
    if lib.freqrobust_conv_probe(message, len(message)) != 0:
      return None, f"oneDNN has no CPU engine here: {message.value.decode()}"
    for name, symbol in _TARGETS.items():
      if name not in _registered:
        jax.ffi.register_ffi_target(f"freqrobust_conv_{name}",
                                    jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
        _registered.add(name)
    lib.freqrobust_conv_calls.restype = ctypes.c_int64
    return lib, f"{message.value.decode()}, {path}"


def available() -> Tuple[bool, str]:
  """Whether the oneDNN library loads here, and its version or why not."""
  lib, reason = _load()
  return lib is not None, reason


def calls() -> dict:
  """How many times each handler has run oneDNN in this process (zeros without the library)."""
  lib, _ = _load()
  return {k: (int(lib.freqrobust_conv_calls(i)) if lib is not None else 0)
          for i, k in enumerate(_KINDS)}


# ----------------------------------------------------------------------------- the operations


def _ffi(name: str, out_shape: Sequence[int], a, b, g: Geometry):
  call = jax.ffi.ffi_call(f"freqrobust_conv_{name}", jax.ShapeDtypeStruct(tuple(out_shape),
                                                                          jnp.float32),
                          vmap_method="sequential")
  return call(a, b, **g.attributes())


def _xla(x, w, g: Geometry):
  pt, pb, pl, pr = g.padding
  return lax.conv_general_dilated(x, w, g.strides, ((pt, pb), (pl, pr)),
                                  dimension_numbers=_NHWC)


def _xla_transpose(linear: Callable, shape, dy):
  """The transpose of XLA's convolution `linear` (linear in its one argument of `shape`) at dy:
  a backward pass on XLA."""
  return jax.linear_transpose(linear, jax.ShapeDtypeStruct(tuple(shape), dy.dtype))(dy)[0]


def output_shape(x_shape, w_shape, g: Geometry) -> Tuple[int, int, int, int]:
  (n, h, w, _), (kh, kw, _, o) = x_shape, w_shape
  (sh, sw), (pt, pb, pl, pr) = g.strides, g.padding
  return n, (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1, o


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def forward(x, w, g: Geometry):
  """y = conv(x, w) through oneDNN (x NHWC, w HWIO, float32); on XLA where `g` says so."""
  if "forward" in g.on_xla:
    return _xla(x, w, g)
  return _ffi("forward", output_shape(x.shape, w.shape, g), x, w, g)


def _forward_fwd(x, w, g):
  return forward(x, w, g), (x, w)


def _forward_bwd(g, residuals, dy):
  x, w = residuals
  return backward_data(dy, w, g, x.shape), backward_weights(x, dy, g, w.shape)


forward.defvjp(_forward_fwd, _forward_bwd)


def backward_data(dy, w, g: Geometry, x_shape):
  """dx of y = conv(x, w) given dy; on XLA (its transposed convolution) where `g` says so."""
  if "backward_data" in g.on_xla:
    return _xla_transpose(lambda x: _xla(x, w, g), x_shape, dy)
  return _backward_data(dy, w, g, tuple(x_shape))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _backward_data(dy, w, g: Geometry, x_shape):
  return _ffi("backward_data", x_shape, dy, w, g)


def _backward_data_fwd(dy, w, g, x_shape):
  return _backward_data(dy, w, g, x_shape), (dy, w)


def _backward_data_bwd(g, x_shape, residuals, ct):
  # <dx, ct> = <dy, conv(ct, w)>: linear in dy and in w.
  dy, w = residuals
  return forward(ct, w, g), backward_weights(ct, dy, g, w.shape)


_backward_data.defvjp(_backward_data_fwd, _backward_data_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _backward_weights(x, dy, g: Geometry, w_shape):
  return _ffi("backward_weights", w_shape, x, dy, g)


def backward_weights(x, dy, g: Geometry, w_shape):
  """dw of y = conv(x, w) given x and dy; on XLA (its transposed convolution) where `g` says so."""
  if "backward_weights" in g.on_xla:
    return _xla_transpose(lambda w: _xla(x, w, g), w_shape, dy)
  return _backward_weights(x, dy, g, tuple(w_shape))


def _backward_weights_fwd(x, dy, g, w_shape):
  return _backward_weights(x, dy, g, w_shape), (x, dy)


def _backward_weights_bwd(g, w_shape, residuals, ct):
  # <dw, ct> = <dy, conv(x, ct)>: linear in x and in dy.
  x, dy = residuals
  return backward_data(dy, ct, g, x.shape), forward(x, ct, g)


_backward_weights.defvjp(_backward_weights_fwd, _backward_weights_bwd)


# ----------------------------------------------------------------------------- the stand-in


def _ones(value) -> bool:
  return value is None or all(int(v) == 1 for v in value)


def geometry(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
             dimension_numbers=None, feature_group_count=1, batch_group_count=1,
             preferred_element_type=None, use_table: bool = True,
             table: Optional[str] = None) -> Optional[Geometry]:
  """The Geometry of a `lax.conv_general_dilated` call oneDNN covers, else None; with
  `use_table`, the handlers that XLA_WINS[table] (default: this CPU's) leaves to XLA."""
  if lhs.ndim != 4 or rhs.ndim != 4 or lhs.dtype != jnp.float32 or rhs.dtype != jnp.float32:
    return None
  if (feature_group_count != 1 or batch_group_count != 1 or not _ones(lhs_dilation)
      or not _ones(rhs_dilation) or preferred_element_type not in (None, jnp.float32)):
    return None
  if dimension_numbers is None or (lax.conv_dimension_numbers(lhs.shape, rhs.shape,
                                                              dimension_numbers)
                                   != lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)):
    return None
  strides = tuple(int(s) for s in window_strides)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], strides, padding)
  pads = tuple(int(p) for pair in padding for p in pair)
  if len(pads) != 4 or min(pads) < 0 or min(strides) < 1 or 0 in lhs.shape or 0 in rhs.shape:
    return None
  g = Geometry(strides, pads)
  if min(output_shape(lhs.shape, rhs.shape, g)[1:3]) < 1:
    return None
  if not use_table:
    return g
  return g._replace(on_xla=xla_handlers(rhs.shape[:2], max(strides) > 1, max(lhs.shape[1:3]),
                                        lhs.shape[3], table))


def make_conv(use_table: bool, table: Optional[str] = None) -> Callable:
  """A `lax.conv_general_dilated` stand-in: oneDNN where `geometry` covers the call, else lax;
  `table` names the XLA_WINS table (default: this CPU's) where `use_table`."""
  def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                           rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                           batch_group_count=1, precision=None, preferred_element_type=None):
    g = geometry(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                 dimension_numbers, feature_group_count, batch_group_count,
                 preferred_element_type, use_table, table)
    if g is None:
      return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                      rhs_dilation, dimension_numbers, feature_group_count,
                                      batch_group_count, precision, preferred_element_type)
    return forward(lhs, rhs, g)
  conv_general_dilated.use_table = use_table
  return conv_general_dilated


_CONVS = {True: make_conv(True), False: make_conv(False)}  # One function each: jit caches hit.


def _announce(message: str) -> None:
  """The INFO line of `select` on stdout (process 0 of a multi-process run)."""
  if jax.process_index() == 0:
    print(f"INFO: {message}", flush=True)


def _blocker(backend: str) -> Optional[str]:
  """Why `backend` runs convolutions on XLA here, or None."""
  platform, devices = jax.default_backend(), jax.device_count()
  ok, reason = available()
  if platform != "cpu":
    return f"JAX runs on {platform}"
  if not ok:
    return reason
  if backend == "auto" and devices > 1:
    # XLA does not partition a custom call: each device would gather and compute the whole batch.
    return f"{devices} CPU devices (the oneDNN call is not partitioned over them)"
  return None


@functools.lru_cache(maxsize=None)
def select(backend: str) -> Optional[Callable]:
  """The convolution of `backend` (BACKENDS): None for XLA's, else oneDNN's stand-in. Prints one
  INFO line (once per backend and process) saying which runs and why; "onednn" where it cannot
  run is a UserError."""
  if backend not in BACKENDS:
    raise UserError(f"config.train.conv_backend={backend!r}; valid: {', '.join(BACKENDS)}.")
  if backend == "xla":
    _announce("Convolutions: XLA (config.train.conv_backend='xla').")
    return None
  blocker = _blocker(backend)
  if blocker is not None and backend == "onednn":
    raise UserError(f"config.train.conv_backend='onednn' needs JAX on the CPU and the oneDNN "
                    f"library, but {blocker}: set config.train.conv_backend='auto' (oneDNN where "
                    "it can run) or 'xla'.")
  if blocker is not None:
    _announce(f"Convolutions: XLA (config.train.conv_backend='auto': {blocker}).")
    return None
  table = backend == "auto"
  wins = ""
  if table:
    name, why = table_name()
    rules = "; ".join(r.describe() for r in XLA_WINS.get(name, ()))
    wins = f" and, measured faster there, {rules or 'none'} (table {name!r}: {why})"
  devices = jax.device_count()
  _announce(f"Convolutions: oneDNN ({available()[1]}) for float32 NHWC convolutions without "
            f"dilation or groups (config.train.conv_backend={backend!r}); XLA for the others"
            + wins
            + (f"; on {devices} devices each computes the whole batch" if devices > 1 else "")
            + ".")
  return _CONVS[table]


def check_config(train_config) -> None:
  """Validation of config.train.conv_backend (experiment.validate calls it)."""
  backend = train_config.get("conv_backend", "auto")
  if backend not in BACKENDS:
    raise UserError(f"config.train.conv_backend={backend!r} is invalid: one of "
                    f"{', '.join(BACKENDS)} (auto: oneDNN on the CPU when its library is built, "
                    "XLA elsewhere).")
