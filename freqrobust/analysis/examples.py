"""Hand-made first layers with known frequency responses: a 3x3 box blur (a low-pass) and a 3x3
Laplacian (a high-pass). `python -m freqrobust.examples` draws the docs' example figures of them.
"""
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

BOX_BLUR = np.ones((3, 3)) / 9.0
LAPLACIAN = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def handmade_first_layer(kernel2d: np.ndarray, cin: int, cout: int, bias: float = 0.0
                         ) -> tuple[Callable[[jax.Array], jax.Array], np.ndarray]:
  """`relu(conv(x - 0.5, K) + bias)` with output channel k reading input channel k % cin.

  Centring the input plays the part of a trained model's input normalisation: the flat grey
  image maps to zero, so the ReLU half-wave-rectifies each cosine and the PDM response is
  proportional to the kernel's gain at that frequency. Returns `(layer_fn, kernel (3, 3, cin,
  cout))`.
  """
  kernel = np.zeros(kernel2d.shape + (cin, cout), np.float32)
  for k in range(cout):
    kernel[:, :, k % cin, k] = kernel2d
  kernel_j = jnp.asarray(kernel)

  @jax.jit
  def layer_fn(x: jax.Array) -> jax.Array:
    y = jax.lax.conv_general_dilated(x - 0.5, kernel_j, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jax.nn.relu(y + bias)

  return layer_fn, kernel
