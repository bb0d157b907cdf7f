"""Test utilities shared by the test suite (and by users checking their own extensions): independent references.

Nothing here is used by the library itself; it exists so that tests compare against something not derived from the
code under test.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def central_difference_grad(fn: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
  """Gradient of a scalar float64 NumPy function by central differences, (f(x + h e_i) - f(x - h e_i)) / 2h.

  Args:
    fn: maps an array shaped like `x` to a scalar; evaluated 2 * x.size times.
    x: the point, any shape (cast to float64).
    h: the step; error O(h^2) for smooth fn.

  Returns:
    float64 array shaped like `x`.
  """
  x = np.asarray(x, np.float64)
  g = np.zeros_like(x)
  for idx in np.ndindex(x.shape):
    e = np.zeros_like(x)
    e[idx] = h
    g[idx] = (fn(x + e) - fn(x - e)) / (2 * h)
  return g
