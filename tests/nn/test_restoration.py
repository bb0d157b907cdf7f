"""C-BSN's conditional blind-spot convolution [210] and the channel-shuffling layer [171]: the centre tap is provably
unused when blind (an exact zero Jacobian diagonal, by autodiff), the unmasked layer equals a float64 NumPy
convolution, and shuffling is a permutation undone exactly by its inverse."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn import restoration as rs

RNG = np.random.default_rng(0)


def _np_conv_same(x, k, dilation=1):
  """float64 NumPy 'SAME' cross-correlation, NHWC x HWIO."""
  x, k = np.asarray(x, np.float64), np.asarray(k, np.float64)
  b, h, w, _ = x.shape
  kh, kw, _, co = k.shape
  ph, pw = dilation * (kh // 2), dilation * (kw // 2)
  xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
  out = np.zeros((b, h, w, co))
  for i in range(kh):
    for j in range(kw):
      out += np.einsum("bhwc,co->bhwo", xp[:, i * dilation:i * dilation + h, j * dilation:j * dilation + w], k[i, j])
  return out


def test_blind_spot_conv_centre_tap_unused_when_blind():
  """[210]: d out[b, p, :] / d x[b, p, :] == 0 exactly for every pixel p when blind; not when unmasked; one jitted
  function serves both modes (blind traced); values equal NumPy convolutions with / without the centre tap."""
  x = RNG.normal(size=(1, 5, 6, 2)).astype(np.float32)
  k = RNG.normal(size=(3, 3, 2, 3)).astype(np.float32)
  conv = jax.jit(lambda x, blind: rs.conditional_blind_spot_conv(x, jnp.asarray(k), blind=blind, dilation=2))

  def diag(blind):
    # Jacobian of sum over output channels at pixel p w.r.t. input at pixel p, for every p.
    jac = jax.jacrev(lambda z: conv(z, blind).sum(-1))(jnp.asarray(x))  # [1, 5, 6, 1, 5, 6, 2]
    return np.einsum("hwhwc->hwc", np.asarray(jac)[0, :, :, 0])

  assert np.all(diag(jnp.asarray(True)) == 0.0)
  assert np.all(np.abs(diag(jnp.asarray(False))) > 0)
  k0 = k.copy()
  k0[1, 1] = 0
  np.testing.assert_allclose(np.asarray(conv(jnp.asarray(x), jnp.asarray(True))), _np_conv_same(x, k0, 2), atol=1e-5)
  np.testing.assert_allclose(np.asarray(conv(jnp.asarray(x), jnp.asarray(False))), _np_conv_same(x, k, 2),
                             atol=1e-5)


def test_blind_spot_module_nnx_jit_split_merge_and_errors():
  layer = rs.ConditionalBlindSpotConv(2, 4, rngs=nnx.Rngs(0))
  x = jnp.asarray(RNG.normal(size=(2, 6, 6, 2)).astype(np.float32))
  graph, state = nnx.split(layer)
  out = nnx.jit(lambda m, x: m(x, blind=True))(nnx.merge(graph, state), x)
  ref = rs.conditional_blind_spot_conv(x, layer.kernel[...], layer.bias[...], blind=True)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(ref))
  # The centre weight gets exactly zero gradient in blind mode, a non-zero one otherwise (one jit, blind traced).
  grad_k = jax.jit(jax.grad(lambda k, blind: jnp.sum(rs.conditional_blind_spot_conv(x, k, blind=blind) ** 2)))
  assert np.all(np.asarray(grad_k(layer.kernel[...], jnp.asarray(True)))[1, 1] == 0)
  assert np.all(np.asarray(grad_k(layer.kernel[...], jnp.asarray(False)))[1, 1] != 0)
  with pytest.raises(ValueError, match="kernel_size"):
    rs.ConditionalBlindSpotConv(2, 4, kernel_size=4, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="in_features"):
    layer(jnp.zeros((1, 4, 4, 3)))
  with pytest.raises(ValueError, match="kernel"):
    rs.conditional_blind_spot_conv(x, jnp.zeros((2, 2, 2, 1)))
  with pytest.raises(TypeError, match="blind"):
    rs.conditional_blind_spot_conv(x, jnp.zeros((3, 3, 2, 1)), blind=jnp.asarray(1.0))


def test_channel_shuffle_is_an_invertible_group_permutation():
  """[171]: each example's channel groups are permuted (a permutation of whole groups), and unshuffle inverts it."""
  x = jnp.asarray(RNG.normal(size=(8, 3, 2, 6)).astype(np.float32))
  y, perm = jax.jit(lambda x, k: rs.channel_shuffle(x, k, groups=2))(x, jax.random.key(1))
  p = np.asarray(perm)
  for b in range(8):
    assert sorted(p[b].tolist()) == list(range(6))
    assert p[b].tolist() in ([0, 1, 2, 3, 4, 5], [3, 4, 5, 0, 1, 2])
    np.testing.assert_array_equal(np.asarray(y)[b], np.asarray(x)[b][..., p[b]])
  assert len({tuple(r) for r in p.tolist()}) == 2  # both orders occur among 8 examples (fixed key)
  np.testing.assert_array_equal(np.asarray(rs.channel_unshuffle(y, perm)), np.asarray(x))
  layer = rs.ChannelShuffle(groups=2, rngs=nnx.Rngs(shuffle=0))
  z = np.asarray(nnx.jit(lambda m, x: m(x))(layer, x))
  assert not np.array_equal(z, np.asarray(x))
  np.testing.assert_array_equal(np.sort(z, -1), np.sort(np.asarray(x), -1))
  np.testing.assert_array_equal(np.asarray(layer(x, deterministic=True)), np.asarray(x))
  with pytest.raises(ValueError, match="groups"):
    rs.channel_shuffle(x, jax.random.key(0), groups=4)


def test_random_subsampler_picks_one_pixel_per_block_like_numpy():
  """[210]: out[b, i, j] = x[b, s i + k // s, s j + k % s] for the drawn k (a loop transcription of the authors'
  space_to_depth + gather), every k in [0, s²) drawn, the index reusable on another image."""
  x = RNG.normal(size=(2, 6, 4, 3)).astype(np.float32)
  run = jax.jit(lambda x, k: rs.random_subsampler(x, k, stride=2))
  sub, idx = (np.asarray(a) for a in run(jnp.asarray(x), jax.random.key(2)))
  assert sub.shape == (2, 3, 2, 3) and idx.shape == (2, 3, 2) and set(np.unique(idx)) <= {0, 1, 2, 3}
  ref = np.empty_like(sub)
  for b in range(2):
    for i in range(3):
      for j in range(2):
        k = idx[b, i, j]
        ref[b, i, j] = x[b, 2 * i + k // 2, 2 * j + k % 2]
  np.testing.assert_array_equal(sub, ref)
  np.testing.assert_array_equal(np.asarray(rs.subsample(jnp.asarray(x), jnp.asarray(idx), stride=2)), ref)
  with pytest.raises(ValueError, match="index"):
    rs.subsample(jnp.asarray(x), jnp.asarray(idx) + 4, stride=2)
  with pytest.raises(ValueError, match="stride"):
    rs.random_subsampler(jnp.asarray(x), jax.random.key(0), stride=4)
