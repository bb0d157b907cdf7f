"""SN-Net [149]: the least-squares stitch equals np.linalg.lstsq (full-rank and rank-deficient activations); the
anchor configurations equal the anchors run on their own; an anchor stitched to itself at the same block with the
least-squares init is the anchor (M = I); parameter counts; the NNX contract; bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn.stitching import SNNet, StitchingLayer, stitching_least_squares
from tests.nn._layer_contract import check_layer_contract


def _mlp(widths, seed, param_dtype=jnp.float32):
  rngs = nnx.Rngs(seed)
  blocks = [nnx.Sequential(nnx.Linear(a, b, param_dtype=param_dtype, rngs=rngs), jax.nn.relu)
            for a, b in zip(widths[:-2], widths[1:-1])]
  return blocks + [nnx.Linear(widths[-2], widths[-1], param_dtype=param_dtype, rngs=rngs)]


def test_least_squares_stitch_and_anchor_end_points():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(20, 5)), rng.normal(size=(20, 3))
  a_def = np.concatenate([a[:, :3], a[:, :2] @ rng.normal(size=(2, 2))], 1)      # rank 3 of 5
  with jax.enable_x64(True):
    for aa in (a, a_def):
      got = np.asarray(stitching_least_squares(jnp.asarray(aa), jnp.asarray(b)))
      np.testing.assert_allclose(got, np.linalg.lstsq(aa, b, rcond=None)[0], rtol=1e-8, atol=1e-10)
  wa, wb = (4, 6, 6, 3), (4, 12, 12, 3)
  net = SNNet(_mlp(wa, 1), _mlp(wb, 2), wa, wb, [(1, 1), (2, 2)], rngs=nnx.Rngs(3))
  x = jax.random.normal(jax.random.key(4), (64, 4))
  net.init_stitches_least_squares(x)
  ref_a, ref_b = _mlp(wa, 1), _mlp(wb, 2)          # the same anchors, built again from the same seeds
  run = lambda blocks, x: blocks[2](blocks[1](blocks[0](x)))
  outs = nnx.jit(lambda net, ra, rb: (net(x, 0), run(ra, x), net(x, 1), run(rb, x), net(x, 2), ra[0](x), rb[0](x)))(
      net, ref_a, ref_b)
  np.testing.assert_array_equal(np.asarray(outs[0]), np.asarray(outs[1]))
  np.testing.assert_array_equal(np.asarray(outs[2]), np.asarray(outs[3]))
  # the stitch of config 2 is lstsq(anchor a's block-0 output, anchor b's block-0 output); output = that pipeline
  ha, hb = np.asarray(outs[5], np.float64), np.asarray(outs[6], np.float64)
  m = np.linalg.lstsq(ha, hb, rcond=None)[0]
  np.testing.assert_allclose(np.asarray(net.stitches[0].kernel[...]), m, rtol=1e-3, atol=1e-4)
  want = ref_b[2](ref_b[1](jnp.asarray(ha @ m, jnp.float32)))
  np.testing.assert_allclose(np.asarray(outs[4]), np.asarray(want), rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_stitch_counts_and_self_stitch_identity():
  wa, wb = (4, 6, 6, 3), (4, 12, 12, 3)
  net = SNNet(_mlp(wa, 1), _mlp(wb, 2), wa, wb, [(1, 1), (2, 2)], rngs=nnx.Rngs(3))
  # parameter counts per configuration
  n = lambda ws: sum(i * o + o for i, o in zip(ws[:-1], ws[1:]))
  assert net.num_params(0) == n(wa) and net.num_params(1) == n(wb)
  assert net.num_params(3) == (4 * 6 + 6) + (6 * 6 + 6) + (6 * 12 + 12) + (12 * 3 + 3)
  # an anchor stitched to itself at the same block: M = I, the output is the anchor's
  self_net = SNNet(_mlp(wb, 2), _mlp(wb, 2), wb, wb, [(1, 1)], rngs=nnx.Rngs(6))
  xs = jax.random.normal(jax.random.key(7), (200, 4)) + 1.0     # shifted: the ReLU features keep full column rank
  self_net.init_stitches_least_squares(xs)
  np.testing.assert_allclose(np.asarray(self_net.stitches[0].kernel[...]), np.eye(12), atol=1e-4)
  np.testing.assert_allclose(np.asarray(self_net(xs, 2)), np.asarray(self_net(xs, 0)), rtol=1e-4, atol=1e-4)


def test_stitching_errors():
  wa, wb = (4, 6, 6, 3), (4, 12, 12, 3)
  a, b = _mlp(wa, 0), _mlp(wb, 0)
  with pytest.raises(ValueError, match="stitch point"):
    SNNet(a, b, wa, wb, [(3, 1)], rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="same input width"):
    SNNet(a, b, wa, (5,) + wb[1:], [(1, 1)], rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="widths"):
    SNNet(a, b, wa[:2], wb, [(1, 1)], rngs=nnx.Rngs(0))
  net = SNNet(a, b, wa, wb, [(1, 1)], rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="config"):
    net(jnp.ones((2, 4)), 3)
  with pytest.raises(ValueError, match="x must be"):
    net(jnp.ones((2, 5)), 0)
  with pytest.raises(ValueError, match="same N"):
    stitching_least_squares(jnp.ones((3, 2)), jnp.ones((4, 2)))
  with pytest.raises(ValueError, match="need A"):
    StitchingLayer(2, 3, rngs=nnx.Rngs(0)).init_least_squares(jnp.ones((4, 3)), jnp.ones((4, 3)))


class _Fixed(nnx.Module):
  def __init__(self, net, config):
    self.net, self.config = net, config

  def __call__(self, x):
    return self.net(x, self.config)


@pytest.mark.slow
def test_snnet_layer_contract(tmp_path):
  wa, wb = (4, 6, 6, 3), (4, 12, 12, 3)
  make = lambda dt: _Fixed(SNNet(_mlp(wa, 1, dt), _mlp(wb, 2, dt), wa, wb, [(1, 2)], param_dtype=dt,
                                 rngs=nnx.Rngs(3)), 2)
  check_layer_contract(make, jax.random.normal(jax.random.key(0), (8, 4)), tmp_path)
