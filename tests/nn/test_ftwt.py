import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn import FTWTConv, ftwt_mask_loss, ftwt_mask_target


def _np_target(a, tau):
  """float64 transcription of the authors' get_gt_mask_ratio: peak |a| per channel, normalised, sorted, cumsum."""
  heat = np.abs(a.astype(np.float64)).max(axis=(1, 2))
  out = np.zeros_like(heat)
  for b in range(heat.shape[0]):
    p = heat[b] / heat[b].sum()
    acc = 0.0
    for c in np.argsort(-p, kind="stable"):
      acc += p[c]
      if (tau == 1.0 and p[c] > 1e-5) or (tau < 1.0 and acc - tau <= 1e-5):
        out[b, c] = 1.0
  return out


def test_ftwt_exact():
  a = np.random.default_rng(0).normal(size=(3, 4, 4, 8)).astype(np.float32)
  target = jax.jit(ftwt_mask_target, static_argnums=1)
  for tau in (0.3, 0.7, 1.0):
    np.testing.assert_array_equal(np.asarray(target(a, tau)), _np_target(a, tau))
  # hand-computed: peaks (0.5, 0.3, 0.2) -> tau 0.8 keeps the first two, 0.7 only the first, 0.4 none (the top
  # channel alone exceeds tau); all-zero maps give an empty target
  h = np.zeros((1, 2, 2, 3), np.float32); h[0, 0, 0] = [0.5, -0.3, 0.2]
  cases = ((0.8, [1, 1, 0]), (0.7, [1, 0, 0]), (0.4, [0, 0, 0]), (1.0, [1, 1, 1]))
  hand, zero = jax.jit(lambda h: ([ftwt_mask_target(h, tau) for tau, _ in cases],   # one program for all five
                                  ftwt_mask_target(jnp.zeros_like(h), 0.5)))(h)
  for (tau, want), got in zip(cases, hand):
    np.testing.assert_array_equal(np.asarray(got)[0], want)
  np.testing.assert_array_equal(np.asarray(zero), 0.0)
  # no gradient flows into the target
  g = jax.jit(jax.grad(lambda x: jnp.sum(ftwt_mask_target(x, 0.5) * x.sum(axis=(1, 2)))))(jnp.asarray(a))
  np.testing.assert_allclose(np.asarray(g), np.broadcast_to(np.asarray(target(a, 0.5))[:, None, None], a.shape))
  lg = jax.jit(jax.grad(lambda t: ftwt_mask_loss(jnp.zeros((3, 8)), t).sum()))(jnp.ones((3, 8)))
  np.testing.assert_array_equal(np.asarray(lg), 0.0)
  # BCE against float64 NumPy
  z = np.random.default_rng(1).normal(size=(3, 8)); t = _np_target(a, 0.5)
  ref = np.mean(np.log1p(np.exp(-z)) * t + np.log1p(np.exp(z)) * (1 - t), axis=-1)
  np.testing.assert_allclose(np.asarray(jax.jit(ftwt_mask_loss)(jnp.asarray(z, jnp.float32), jnp.asarray(t, jnp.float32))), ref, rtol=1e-5)
  # masked conv == conv over kept channels only
  m = FTWTConv(2, 8, rngs=nnx.Rngs(0))
  x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 5, 5, 2)), jnp.float32)
  (out, logits, _), prob = nnx.jit(lambda m, x: (m(x), jax.nn.sigmoid(m(x)[1])))(m, x)
  keep = np.asarray(prob > 0.5)
  k = np.asarray(m.conv.kernel[...]); bias = np.asarray(m.conv.bias[...])
  idxs = [np.flatnonzero(keep[b]) for b in range(2)]
  refs = jax.jit(lambda x: [jax.lax.conv_general_dilated(   # one program for both references
      x[b:b + 1], k[..., idx], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))[0] + bias[idx]
      for b, idx in enumerate(idxs)])(x)
  out = np.asarray(out)
  for b, idx, ref in zip(range(2), idxs, refs):
    np.testing.assert_allclose(out[b][..., idx], np.asarray(ref), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out[b][..., np.flatnonzero(~keep[b])], 0.0)
  # bad input
  with pytest.raises(ValueError, match="tau"):
    ftwt_mask_target(a, 1.5)
  with pytest.raises(ValueError, match="activations"):
    ftwt_mask_target(a[0], 0.5)
  with pytest.raises(ValueError, match="x must be"):
    m(x[..., :1])


def test_ftwt_conv_layer_contract(tmp_path):
  """nnx.jit, split/merge train step, bf16 parameters, orbax round trip (issue 20's module contract); the loss is
  the gated output's mean square plus the mask-prediction loss, so both the conv and the predictor train."""
  import jax.numpy as jnp
  from flax import nnx

  from jaxlib_methods.nn import FTWTConv, ftwt_mask_loss, ftwt_mask_target
  from tests.nn._layer_contract import check_layer_contract

  class _Wrap(nnx.Module):   # the contract compares single outputs: the gated output
    def __init__(self, param_dtype):
      self.inner = FTWTConv(3, 4, param_dtype=param_dtype, rngs=nnx.Rngs(0))

    def __call__(self, x):
      return self.inner(x)[0]

  def loss(m, x):
    out, logits, dense = m.inner(x)
    return (jnp.mean(jnp.asarray(out, jnp.float32) ** 2)
            + jnp.mean(ftwt_mask_loss(logits.astype(jnp.float32),
                                      ftwt_mask_target(dense.astype(jnp.float32), 0.9))))

  x = jnp.linspace(-1.0, 1.0, 2 * 5 * 5 * 3).reshape(2, 5, 5, 3)
  check_layer_contract(_Wrap, x, tmp_path, loss=loss)
