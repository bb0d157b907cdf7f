"""STSL's drift term [212] (analysis.hutchinson_trace_gradient): the Hutchinson estimate of grad_z tr(dfn/dz) is
exact for an elementwise fn (-sin z for fn = sin) and 0 for a linear score (Gaussian prior); for a non-separable fn
it matches autodiff of the exact trace within 5 standard errors (per-coordinate failure probability ~6e-7)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import analysis


def test_hutchinson_trace_gradient_exact_and_unbiased():
  rng = np.random.default_rng(0)
  B, d, m = 2, 3, 4096
  z = rng.normal(size=(B, d))
  A = rng.normal(size=(d, d))
  b = rng.normal(size=d)
  prec = np.eye(d) + 0.3 * (A + A.T) @ (A + A.T).T / d

  def cubic(zz):                                     # per example: A z + (z . z) b; tr J = tr A + 2 b . z
    return zz @ A.T + jnp.sum(zz ** 2, -1, keepdims=True) * b

  with jax.enable_x64(True):
    @jax.jit
    def run(zj, key):
      exact = jax.grad(lambda zz: jnp.sum(jax.vmap(lambda x: jnp.trace(jax.jacfwd(
          lambda y: cubic(y[None])[0])(x)))(zz)))(zj)                  # autodiff of the exact trace
      return (analysis.hutchinson_trace_gradient(jnp.sin, zj, key=key),
              analysis.hutchinson_trace_gradient(lambda zz: -zz @ prec, zj, key=key, num_probes=3),
              analysis.hutchinson_trace_gradient(cubic, zj, key=key, num_probes=m), exact)
    g_sin, g_lin, g_cubic, exact = run(jnp.asarray(z), jax.random.key(1))
  np.testing.assert_allclose(g_sin, -np.sin(z), rtol=1e-12)                   # elementwise: exact, any probe
  np.testing.assert_allclose(g_lin, 0.0, atol=1e-12)                          # Gaussian score: constant trace
  np.testing.assert_allclose(exact, np.broadcast_to(2 * b, (B, d)), rtol=1e-12)
  se = 2 * np.sqrt((np.sum(b ** 2) - b ** 2) / m)                             # std error of each coordinate
  assert np.all(np.abs(np.asarray(g_cubic) - 2 * b) <= 5 * se), (np.asarray(g_cubic), 2 * b, se)
  with pytest.raises(ValueError, match="num_probes"):
    analysis.hutchinson_trace_gradient(jnp.sin, z, key=jax.random.key(0), num_probes=0)
  with pytest.raises(ValueError, match="z must be"):
    analysis.hutchinson_trace_gradient(jnp.sin, z[0], key=jax.random.key(0))
  with pytest.raises(TypeError, match="z"):
    analysis.hutchinson_trace_gradient(jnp.sin, np.ones((2, 3), np.int32), key=jax.random.key(0))
  with pytest.raises(ValueError, match="fn must map"):
    analysis.hutchinson_trace_gradient(lambda zz: zz[:, :1], z, key=jax.random.key(0))
