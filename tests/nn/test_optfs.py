import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn import OptFSGate, optfs_beta, optfs_gamma


def test_optfs_gate_exact():
  g = OptFSGate(6)                       # init 0.5, rescaled by 1 / sigmoid(0.5) as in the authors' code
  m = np.array([-1.0, 0.3, 0.0, 2.0, -0.2, 0.7], np.float32)
  g.logits[...] = jnp.asarray(m)
  ids = np.array([[0, 3, 5], [1, 2, 4]])
  emb = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
  beta = float(optfs_beta(3, beta0=2.0, gamma=1.5))
  assert beta == pytest.approx(2.0 * 1.5 ** 3)
  c = 1 + np.exp(-0.5)                   # 1 / sigmoid(0.5)
  sig = lambda z: 1 / (1 + np.exp(-z))
  ref = c * emb.astype(np.float64) * sig(beta * m[ids].astype(np.float64))[..., None]
  out = nnx.jit(lambda mod, i, e: mod(i, e, beta))(g, ids, emb)
  np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(g.keep_mask()), m > 0)
  hard = g(ids, emb, beta, hard=True)
  np.testing.assert_allclose(np.asarray(hard), c * emb * (m[ids] > 0)[..., None], rtol=1e-6)
  # without the authors' rescaling, the paper's bare sigmoid(beta m); every gate of a fresh module is then sigmoid(init)
  g0 = OptFSGate(6, rescale=False)
  np.testing.assert_allclose(np.asarray(g0.gate(ids, 1.0)), sig(0.5), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(OptFSGate(6).gate(ids, 1.0)), 1.0, rtol=1e-6)   # rescaled: all start at 1
  # l1 penalty = sum_v sigmoid(beta m_v), and its gradient beta s (1 - s)
  np.testing.assert_allclose(float(g.l1_penalty(beta)), sig(beta * m.astype(np.float64)).sum(), rtol=1e-6)
  # gradient reaches the logits through the soft gate: d/dm sum(c e sig(b m)) = c b sig (1-sig) sum_d e
  gd, st = nnx.split(g)
  grad = jax.grad(lambda s: nnx.merge(gd, s)(ids, emb, beta).sum())(st)
  s = sig(beta * m.astype(np.float64))
  exp = np.zeros(6)
  np.add.at(exp, ids.ravel(), (c * beta * s[ids] * (1 - s[ids]) * emb.sum(-1)).ravel())
  np.testing.assert_allclose(np.asarray(grad["logits"][...]), exp, rtol=1e-4, atol=1e-5)  # float32 near saturation
  # the authors' schedule: beta from 1 (epoch 0) to final_beta (epoch T - 1)
  gam = optfs_gamma(200.0, 20)
  assert gam == pytest.approx(200.0 ** (1 / 19))
  assert float(optfs_beta(0, gamma=gam)) == pytest.approx(1.0)
  assert float(optfs_beta(19, gamma=gam)) == pytest.approx(200.0, rel=1e-5)
  with pytest.raises(ValueError, match="num_values"):
    OptFSGate(0)
  with pytest.raises(ValueError, match="embeddings shape"):
    g(ids, emb[:, :2], beta)
  with pytest.raises(TypeError, match="ids"):
    g(ids.astype(np.float32), emb, beta)
  with pytest.raises(ValueError, match="gamma"):
    optfs_beta(1, gamma=0.5)
  with pytest.raises(ValueError, match="search_epochs"):
    optfs_gamma(200.0, 1)
  with pytest.raises(ValueError, match="final_beta"):
    optfs_gamma(0.5, 10)


def test_optfs_gate_layer_contract(tmp_path):
  """nnx.jit, split/merge train step, bf16 logits, orbax round trip (issue 20's module contract)."""
  import jax.numpy as jnp
  from flax import nnx

  from jaxlib_methods.nn import OptFSGate
  from tests.nn._layer_contract import check_layer_contract

  class _Wrap(nnx.Module):
    def __init__(self, param_dtype):
      self.gate = OptFSGate(6, param_dtype=param_dtype)

    def __call__(self, x):
      ids = jnp.array([[0, 3, 5], [1, 2, 4]])
      return self.gate(ids, x, 2.0)

  x = jnp.linspace(-1.0, 1.0, 2 * 3 * 4).reshape(2, 3, 4)
  check_layer_contract(_Wrap, x, tmp_path)
