"""[81] EcoTTA: x~_k = BN(F_k(x~_{k-1})) + g_k(x~_{k-1}) and the original path against a NumPy transcription;
the regulariser and the filtered-entropy loss against NumPy; only the meta networks are Params, they all get
gradients, and an optimizer step leaves the frozen weights bitwise unchanged (under nnx.jit); errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxlib_methods.nn import EcoTTAPart, ecotta_forward, ecotta_loss, self_distilled_regularization
from jaxlib_methods.nn.low_rank import FrozenWeight


def _parts():
  rngs = nnx.Rngs(0)
  f1, f2 = nnx.Linear(3, 4, rngs=rngs), nnx.Linear(4, 4, rngs=rngs)
  return nnx.List([EcoTTAPart(f1, 4, nnx.Linear(3, 4, rngs=rngs), rngs=rngs),
                   EcoTTAPart(f2, 4, nnx.Linear(4, 4, rngs=rngs), rngs=rngs)]), (f1, f2)


@pytest.mark.slow
def test_ecotta_forward_regularizer_and_loss_match_numpy():
  parts, (f1, f2) = _parts()
  x = jax.random.normal(jax.random.key(0), (6, 3))
  logits = jnp.asarray([[4.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 5.0, 0.0], [1.0, 1.0, 1.0], [3.0, 0.0, 0.0],
                        [0.0, 0.0, 9.0]])

  @nnx.jit
  def everything(parts, x, logits):                                 # one compile for all the checks
    a, o = ecotta_forward(list(parts), x)
    return (a, o, self_distilled_regularization(a, o), ecotta_loss(logits, a, o, lam=0.5),
            ecotta_loss(logits, a, o, lam=0.0, entropy_threshold=1.0))

  adapted, original, reg, loss_05, loss_ent = everything(parts, x, logits)
  lin = lambda m, v: v @ np.asarray(m.kernel[...], np.float64) + np.asarray(m.bias[...], np.float64)
  bn = lambda v: (v - v.mean(0)) / np.sqrt(v.var(0) + 1e-5)        # fresh BN: scale 1, bias 0, batch statistics
  xn = np.asarray(x, np.float64)
  a1 = bn(lin(f1, xn)) + lin(parts[0].meta_block, xn)
  a2 = bn(lin(f2, a1)) + lin(parts[1].meta_block, a1)
  o1 = lin(f1, xn)
  o2 = lin(f2, o1)
  for got, want in zip(adapted + original, [a1, a2, o1, o2]):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  r = np.abs(a1 - o1).mean(-1) + np.abs(a2 - o2).mean(-1)
  np.testing.assert_allclose(reg, r, rtol=1e-4, atol=1e-5)
  p = np.exp(np.asarray(logits, np.float64))
  p /= p.sum(-1, keepdims=True)
  h = -(p * np.log(p)).sum(-1)
  want = np.where(h < 0.4 * np.log(3), h, 0.0) + 0.5 * r
  np.testing.assert_allclose(loss_05, want, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(loss_ent, h, rtol=1e-5,
                             atol=1e-6)


def test_ecotta_only_meta_networks_train():
  parts, _ = _parts()
  graphdef, params, rest = nnx.split(parts, nnx.Param, ...)
  frozen = nnx.state(parts, FrozenWeight)
  assert all("part" not in jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(params))
  assert len(jax.tree.leaves(frozen)) == 4                      # both parts' kernel and bias
  x = jax.random.normal(jax.random.key(1), (8, 3))
  head = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)
  opt = nnx.Optimizer(parts, optax.sgd(0.1), wrt=nnx.Param)

  @nnx.jit
  def step(parts, opt):
    def loss(parts):
      a, o = ecotta_forward(list(parts), x)
      return ecotta_loss(a[-1] @ head, a, o, lam=1.0, entropy_threshold=1.0).mean()
    g = nnx.grad(loss)(parts)
    opt.update(parts, g)
    return g

  before = jax.tree.map(np.asarray, frozen)
  g = step(parts, opt)
  for leaf in jax.tree.leaves(g):
    assert np.abs(np.asarray(leaf)).sum() > 0                   # every meta parameter gets a gradient
  after = nnx.state(parts, FrozenWeight)
  for b, a in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
    np.testing.assert_array_equal(b, np.asarray(a))
  with pytest.raises(ValueError, match="meta_block"):
    EcoTTAPart(nnx.Linear(3, 4, rngs=nnx.Rngs(0)), 4, nnx.Linear(3, 2, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(0))(x)
  with pytest.raises(ValueError, match="lam"):
    ecotta_loss(jnp.zeros((8, 3)), [], [], lam=-1.0)
  with pytest.raises(ValueError, match="same length"):
    self_distilled_regularization([x], [])
  with pytest.raises(ValueError, match="parts"):
    ecotta_forward([], x)
