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
from freqrobust.analysis.spectra import read_corruption_results
