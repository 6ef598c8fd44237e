"""Frequency-domain interpretation tools (docs/METHOD.md §5 and §7), one function per tool.

Every tool takes plain callables and arrays (a layer or predict function, images, labels, a PRNG
key) and returns NumPy arrays in FFT layout; `freqrobust.analyze` is the command line that loads a
checkpoint, runs a tool and writes figures and numbers into `DIR/analysis/<tool>/`.
"""
from freqrobust.analysis.bandpass import bandlimited_accuracy
from freqrobust.analysis.compare import collect_histograms
from freqrobust.analysis.compare import run_labels
from freqrobust.analysis.heatmap import basis_stack
from freqrobust.analysis.heatmap import fourier_heatmap
from freqrobust.analysis.heatmap import mirror_pairs
from freqrobust.analysis.occlusion import occlusion_attribution
from freqrobust.analysis.occlusion import radial_bands
from freqrobust.analysis.pdm import PAPER_STRENGTH
from freqrobust.analysis.pdm import cpdm_batch
from freqrobust.analysis.pdm import kernel_spectrum
from freqrobust.analysis.pdm import normalize_response_maps
from freqrobust.analysis.pdm import pdm_response
from freqrobust.analysis.pdm import peak_response_without_dc
from freqrobust.analysis.pdm import response_histogram
from freqrobust.analysis.pdm import voting_channels
from freqrobust.analysis.spectra import accuracy_changes
from freqrobust.analysis.spectra import corruption_accuracies
from freqrobust.analysis.spectra import corruption_spectra
from freqrobust.analysis.spectra import difference_spectrum
from freqrobust.analysis.spectra import high_frequency_fraction
from freqrobust.analysis.dct_attribution import dct2
from freqrobust.analysis.dct_attribution import dct_band_attribution
from freqrobust.analysis.dct_attribution import diagonal_bands
from freqrobust.analysis.dct_attribution import idct2
from freqrobust.analysis.dct_attribution import run_dct_attribution
from freqrobust.analysis.fprinciple import default_deltas
from freqrobust.analysis.fprinciple import fprinciple_row
from freqrobust.analysis.fprinciple import frequency_errors
from freqrobust.analysis.fprinciple import gaussian_kernel_matrix
from freqrobust.analysis.fprinciple import pairwise_sq_distances
from freqrobust.analysis.fprinciple import run_fprinciple
from freqrobust.analysis.hfc import hfc_accuracies
from freqrobust.analysis.hfc import hfc_accuracy
from freqrobust.analysis.hfc import hfc_curve_row
from freqrobust.analysis.hfc import hfc_split
from freqrobust.analysis.hfc import run_hfc
from freqrobust.analysis.hfc import run_hfc_curves
from freqrobust.analysis.hfc import run_smoothing
from freqrobust.analysis.hfc import scaled_radii
from freqrobust.analysis.hfc import smooth_first_layer
from freqrobust.analysis.hfc import smooth_kernel
from freqrobust.analysis.hfc import smoothing_curve
from freqrobust.analysis.perturbation import half_power_radius
from freqrobust.analysis.perturbation import perturbation_spectra
from freqrobust.analysis.perturbation import run_perturbation
