"""Native kernels: oneDNN convolutions through jax.ffi (`conv`; built by `build.sh`)."""
