"""[197] The augmentation kernel (arXiv:2306.00788) on a finite space: random masking of uniform binary strings has
the closed-form kernel prod_i [2 (1 - m) 1{x_i = x'_i} + m] and the Walsh spectrum (1 - m)^|S|; the encoder solves
the eigen-equation of the integral operator and is orthonormal in L^2(p)."""

import itertools

import numpy as np
import pytest

from jaxlib_methods.analysis import ssl_augmentation as A


def test_masking_kernel_closed_form_and_walsh_spectrum():
  length, m = 4, 0.3
  x, aug = A.masking_augmentation(length, m)
  px = np.full(len(x), 1 / len(x))
  k = A.augmentation_kernel(aug, px)
  same = (x[:, None, :] == x[None, :, :])
  np.testing.assert_allclose(k, np.prod(2 * (1 - m) * same + m, -1), rtol=1e-12)
  lam, phi = A.top_d_encoder(k, px, len(x))
  walsh = sorted(((1 - m) ** len(s) for r in range(length + 1) for s in itertools.combinations(range(length), r)),
                 reverse=True)
  np.testing.assert_allclose(lam, walsh, atol=1e-12)
  np.testing.assert_allclose(phi.T @ (px[:, None] * phi), np.eye(len(x)), atol=1e-10)
  np.testing.assert_allclose(k @ (px[:, None] * phi), phi * lam, atol=1e-10)   # T phi = lambda phi
  np.testing.assert_allclose(np.abs(phi[:, 0]), 1.0, atol=1e-10)             # top: the constant function
  assert A.augmentation_complexity(k) == pytest.approx(np.sqrt((2 - m) ** length))
  with pytest.raises(ValueError, match="aug"):
    A.augmentation_kernel(aug * 2, px)
  with pytest.raises(ValueError, match="d must"):
    A.top_d_encoder(k, px, 0)
