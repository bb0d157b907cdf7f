"""[168] The deep hierarchical CNN kernel (arXiv:2208.01003): checked against the empirical NTK of finite CNNs with
shared filters (analysis.empirical_ntk; the error falls with the width), and the KRR learning curve against the
minimum-norm least-squares solution of a linear kernel."""

import jax
import numpy as np
import pytest

from jaxlib_methods.analysis import cnn_kernels as K
from jaxlib_methods.analysis import ntk


def test_one_layer_case_is_the_relu_ntk():
  """d = s (L = 1): the two-layer ReLU network's NTK and NNGP (Jacot et al. 2018; Cho & Saul 2009), written out."""
  x = np.random.default_rng(2).normal(size=(4, 3))
  q = np.sum(x * x, 1) / 3
  c = np.clip((x @ x.T / 3) / np.sqrt(np.outer(q, q)), -1, 1)
  t = np.arccos(c)
  nngp = np.sqrt(np.outer(q, q)) * (np.sin(t) + (np.pi - t) * np.cos(t)) / np.pi
  ntk_ref = nngp + (x @ x.T / 3) * (np.pi - t) / np.pi
  out = jax.jit(lambda x: (K.hierarchical_cnn_kernel(x, filter_size=3),
                           K.hierarchical_cnn_kernel(x, filter_size=3, kind="nngp")))(x.astype(np.float32))
  np.testing.assert_allclose(out[0], ntk_ref, rtol=2e-5, atol=1e-5)
  np.testing.assert_allclose(out[1], nngp, rtol=2e-5, atol=1e-5)
  with pytest.raises(ValueError, match="power of filter_size"):
    K.hierarchical_cnn_kernel(np.zeros((2, 6), np.float32), filter_size=4)


@pytest.mark.slow
def test_hierarchical_cnn_kernel_is_the_infinite_width_ntk():
  x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
  k_inf = np.asarray(jax.jit(lambda x: K.hierarchical_cnn_kernel(x, filter_size=2))(x))
  errs = {}
  for width in (32, 1024):
    e = []
    for seed in range(2):
      p = K.hierarchical_cnn_init(jax.random.key(seed), 4, filter_size=2, width=width)
      e.append(np.linalg.norm(ntk.empirical_ntk(K.hierarchical_cnn_apply, p, x) - k_inf) / np.linalg.norm(k_inf))
    errs[width] = np.mean(e)
  assert errs[1024] < 0.12 and errs[1024] < errs[32] / 2, errs
  np.testing.assert_allclose(k_inf, k_inf.T, rtol=1e-6)
  assert np.linalg.eigvalsh(k_inf.astype(np.float64)).min() > 0


def test_krr_learning_curve_is_min_norm_least_squares():
  rng = np.random.default_rng(1)
  xtr, xte, w = rng.normal(size=(12, 5)), rng.normal(size=(7, 5)), rng.normal(size=5)
  mse = K.krr_learning_curve(xtr @ xtr.T, xtr @ w, xte @ xtr.T, xte @ w, [3, 5, 12])
  ref = [np.mean((xte @ (np.linalg.pinv(xtr[:n]) @ (xtr[:n] @ w)) - xte @ w) ** 2) for n in (3, 5, 12)]
  np.testing.assert_allclose(mse, ref, rtol=1e-6, atol=1e-12)
  assert mse[-1] < 1e-12
  with pytest.raises(ValueError, match="ns"):
    K.krr_learning_curve(xtr @ xtr.T, xtr @ w, xte @ xtr.T, xte @ w, [13])
