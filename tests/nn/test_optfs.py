import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn import OptFSGate, optfs_beta


def test_optfs_gate_exact():
  g = OptFSGate(6)
  m = np.array([-1.0, 0.3, 0.0, 2.0, -0.2, 0.7], np.float32)
  g.logits[...] = jnp.asarray(m)
  ids = np.array([[0, 3, 5], [1, 2, 4]])
  emb = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
  beta = float(optfs_beta(3, beta0=2.0, gamma=1.5))
  assert beta == pytest.approx(2.0 * 1.5 ** 3)
  ref = emb.astype(np.float64) / (1 + np.exp(-beta * m[ids].astype(np.float64)))[..., None]
  out = nnx.jit(lambda mod, i, e: mod(i, e, beta))(g, ids, emb)
  np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(g.keep_mask()), m > 0)
  hard = g(ids, emb, beta, hard=True)
  np.testing.assert_array_equal(np.asarray(hard), emb * (m[ids] > 0)[..., None])
  # gradient reaches the logits through the soft gate: d/dm sum(e*sig(b m)) = b sig (1-sig) sum_d e
  gd, st = nnx.split(g)
  grad = jax.grad(lambda s: nnx.merge(gd, s)(ids, emb, beta).sum())(st)
  s = 1 / (1 + np.exp(-beta * m.astype(np.float64)))
  exp = np.zeros(6)
  np.add.at(exp, ids.ravel(), (beta * s[ids] * (1 - s[ids]) * emb.sum(-1)).ravel())
  np.testing.assert_allclose(np.asarray(grad["logits"][...]), exp, rtol=1e-4, atol=1e-6)
  with pytest.raises(ValueError, match="num_values"):
    OptFSGate(0)
  with pytest.raises(ValueError, match="embeddings shape"):
    g(ids, emb[:, :2], beta)
  with pytest.raises(TypeError, match="ids"):
    g(ids.astype(np.float32), emb, beta)
  with pytest.raises(ValueError, match="gamma"):
    optfs_beta(1, gamma=0.5)
