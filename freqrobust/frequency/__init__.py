"""Frequency-domain operators of the paper (docs/METHOD.md §1-5 and §7), as pure functions.

Conventions (METHOD §1): images are float in [0, 1], layout HW or HWC (NHWC is accepted by the
filtering functions too); the 2-D DFT runs over the spatial axes only with NumPy's default
normalisation (forward unscaled), channels independently; frequency index [i, j] is in NumPy's
FFT layout (DC at [0, 0]); the inverse DFT of a modified spectrum is returned as its real part.

Everything that depends only on static shapes (radial distances, mask matrices, NFD band masks,
band edges) is computed once with NumPy and cached, so it is a constant under `jax.jit` and
nothing re-traces. The rest is `jax.numpy` and works under `jit` and `vmap`.

The operators live in two modules, every name re-exported here (`frequency.X`):
`frequency.spectral` (radial distance, masks, power suppression, auxiliary labels, point
detection maps, Fourier basis, band-limited filters) and `frequency.noise` (NFD, METHOD §4).
"""
from __future__ import annotations

import jax

from freqrobust.frequency.spectral import (  # noqa: F401
    MASK_NAMES, APS_CONFIGURATIONS, _xp, _read_only, radial_distance, _signed_frequencies,
    _check_size, mask_step, mask_hill, hill, _mask_curve, aps_mask, aps_masks, _spatial_axes,
    _spatial_shape, _expand, _as_float_image, _dft, _idft_real, _filter, direction, power_suppress,
    beta_suppressed, beta_learnable, basic_open_ratios, ApsConfiguration, parse_aps_configuration,
    aps_label, fourier_basis, cpdm, _square_lowpass_mask, lowpass_square, highpass_square,
    remove_radial_band)
from freqrobust.frequency.noise import (  # noqa: F401
    PAPER_NFD_BANDS_40, NUM_NFD_BANDS, _COVERAGE_ALPHA, _max_radius_int, _coverage_increments,
    band_coverage, nfd_band_edges, nfd_band_masks, nfd_control, _mirror, _reshape_axis, _symmetrize,
    nfd_noise, nfd_spectrum, _lowbias32, fast_standard_normal, bits_to_standard_normal,
    nfd_half_spectrum, _expand_to, nfd)

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
