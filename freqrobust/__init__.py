"""freqrobust: frequency-domain robustness and interpretation of CNNs in JAX/Flax."""
