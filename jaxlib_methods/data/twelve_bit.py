"""The 12-bit task of Shwartz-Ziv & Tishby's information-plane experiments, regenerated from its description.

Shwartz-Ziv & Tishby, "Opening the Black Box of Deep Neural Networks via Information", 2017, arXiv:1703.00810,
Sec. 3.1: "the input X is 12 binary inputs that represent 12 uniformly distributed points on a 2D sphere"; all
2^12 = 4096 patterns; the label is y = Theta(f(x) - theta) for a spherically symmetric real function f and a
threshold theta chosen so that p(y = 1) ~ 0.5. The authors released the labels (var_u.mat) but not f; this module
builds the task from the description (no download):

- the 12 points are the vertices of the regular icosahedron (12 exactly uniformly spread points on the sphere);
- f(x) = sum_i x_i - ||sum_i x_i v_i|| (the number of "on" points minus the length of their resultant), which
  depends on the pattern only through the configuration of its points, so it is invariant under every rotation of
  the sphere that maps the icosahedron to itself (the spherical symmetry, on this point set);
- theta = 4.2 gives p(y = 1) = 0.527; the share of y = 1 among patterns with 5, 6, 7 "on" points is 7.6%, 61.9%,
  92.4% (the released labels: 7.6%, 57.6%, 92.4%, as tabulated by the deep-bottleneck project's documentation),
  0 below 5 and 1 above 7, as there.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def icosahedron_vertices() -> np.ndarray:
  """The 12 unit vertices of the regular icosahedron, float64 [12, 3] (cyclic permutations of (0, +-1, +-phi))."""
  phi = (1.0 + 5.0 ** 0.5) / 2.0
  v = []
  for a in (-1.0, 1.0):
    for b in (-phi, phi):
      v += [(0.0, a, b), (a, b, 0.0), (b, 0.0, a)]
  v = np.asarray(v, np.float64)
  return v / np.linalg.norm(v, axis=1, keepdims=True)


def twelve_bit_task(*, theta: float = 4.2, dtype=jnp.float32):
  """All 4096 12-bit patterns and their labels y = [f(x) > theta] (Shwartz-Ziv & Tishby 2017, arXiv:1703.00810,
  Sec. 3.1; f as in the module docstring: a rotation-invariant function of the 12 icosahedron points switched on).

  Args:
    theta: the threshold (4.2 gives p(y = 1) = 0.527, the paper's ~0.5).
    dtype: float dtype of the inputs.

  Returns:
    (x, y): x [4096, 12] in {0, 1} (row i is the binary expansion of i, bit k in column k), y [4096] int32 labels.
  """
  if not isinstance(theta, (int, float)) or isinstance(theta, bool) or not np.isfinite(theta):
    raise ValueError(f"theta must be a finite float, got {theta=}")
  bits = ((np.arange(4096)[:, None] >> np.arange(12)) & 1).astype(np.float64)
  f = bits.sum(1) - np.linalg.norm(bits @ icosahedron_vertices(), axis=1)
  return jnp.asarray(bits, dtype), jnp.asarray((f > theta).astype(np.int32))
