"""[205] ProbabilisticCircuit, pc_conditional_marginals and the arithmetic coder, against a float64 NumPy
transcription of the circuit and brute-force enumeration of its joint table."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn.probabilistic_circuit import (ProbabilisticCircuit, arithmetic_decode, arithmetic_encode,
                                                     pc_conditional_marginals, quantize_probability)
from tests.nn._layer_contract import check_layer_contract


def _numpy_log_prob(pc, x):
  """float64 transcription of the layered PC on one full assignment x [D] (no masking)."""
  l = np.asarray(pc.leaf_logits[...], np.float64)
  p1 = 1 / (1 + np.exp(-l))
  h = np.where(np.asarray(x)[:, None] == 1, p1, 1 - p1)              # [D, K] probabilities
  for w in pc.level_logits:
    w = np.asarray(w[...], np.float64)
    w = np.exp(w - w.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    prod = np.einsum("ri,rj->rij", h[0::2], h[1::2]).reshape(h.shape[0] // 2, -1)
    h = np.einsum("rok,rk->ro", w, prod)
  return np.log(h[0, 0])


def test_pc_exact_marginals_and_conditionals_by_enumeration():
  D, K = 8, 3
  pc = ProbabilisticCircuit(D, K, rngs=nnx.Rngs(1))
  allx = np.array(list(itertools.product((0, 1), repeat=D)))        # [256, D]
  lp = np.asarray(jax.jit(lambda x: pc.log_prob(x))(allx), np.float64)
  ref = np.array([_numpy_log_prob(pc, x) for x in allx[::17]])
  np.testing.assert_allclose(lp[::17], ref, rtol=0, atol=2e-5)
  joint = np.exp(np.array([_numpy_log_prob(pc, x) for x in allx]))
  assert abs(joint.sum() - 1) < 1e-9                                  # smooth + decomposable: normalised
  # conditionals of a random order and a few messages = ratios of summed joint-table entries
  rng = np.random.default_rng(0)
  order = rng.permutation(D)
  xs = allx[rng.choice(len(allx), 5, replace=False)]
  cond = np.asarray(jax.jit(lambda x: pc_conditional_marginals(pc, x, order))(xs), np.float64)
  for x, c in zip(xs, cond):
    for t in range(D):
      prev = order[:t]
      match = np.all(allx[:, prev] == x[prev], axis=1)
      num = joint[match & (allx[:, order[t]] == 1)].sum()
      np.testing.assert_allclose(c[t], num / joint[match].sum(), rtol=1e-4, atol=1e-6)
  # a marginal with a mask = the joint summed over the unobserved variables
  mask = np.array([True, False, True, True, False, False, True, False])
  x = xs[0]
  want = joint[np.all(allx[:, mask] == x[mask], axis=1)].sum()
  np.testing.assert_allclose(np.exp(float(pc.log_prob(x, mask))), want, rtol=1e-5)
  # telescoping: the ideal code length is -log2 p(x)
  np.testing.assert_allclose(-np.log2(np.where(x[order] == 1, cond[0], 1 - cond[0])).sum(),
                             -np.log2(joint[np.all(allx == x, axis=1)][0]), rtol=1e-4)


def test_arithmetic_coder_round_trip_and_length_bound():
  rng = np.random.default_rng(3)
  P = 12
  for D in (1, 7, 40):
    for _ in range(5):
      bits = rng.integers(0, 2, D)
      q = quantize_probability(rng.uniform(0, 1, D), P)
      c, n = arithmetic_encode(bits, q, P)
      assert c < 2 ** max(n, 1)
      ideal = -np.sum(np.log2(np.where(bits == 1, q, 2 ** P - q) / 2 ** P))
      assert ideal <= n <= ideal + 2, (n, ideal)
      assert arithmetic_decode(c, n, D, lambda t, prefix: q[t], P) == bits.tolist()
  with pytest.raises(ValueError, match="q_one"):
    arithmetic_encode([0, 1], [0, 5], 4)
  with pytest.raises(ValueError, match="bits"):
    arithmetic_encode([0, 2], [3, 5], 4)


def test_pc_bad_input():
  with pytest.raises(ValueError, match="power of two"):
    ProbabilisticCircuit(6, 2, rngs=nnx.Rngs(0))
  with pytest.raises(TypeError, match="num_units"):
    ProbabilisticCircuit(8, 2.0, rngs=nnx.Rngs(0))
  pc = ProbabilisticCircuit(4, 2, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="x must be"):
    pc.log_prob(jnp.zeros((3, 5), jnp.int32))
  with pytest.raises(TypeError, match="mask"):
    pc.log_prob(jnp.zeros((3, 4), jnp.int32), jnp.ones(4))
  with pytest.raises(ValueError, match="order"):
    pc_conditional_marginals(pc, jnp.zeros((4,), jnp.int32), [0, 1, 1, 2])


class _NLL(nnx.Module):
  def __init__(self, param_dtype):
    self.pc = ProbabilisticCircuit(8, 3, rngs=nnx.Rngs(0), param_dtype=param_dtype)

  def __call__(self, x):
    return -self.pc.log_prob(x)


@pytest.mark.slow  # nnx.jit, split/merge train step, bf16, orbax: a few s of compiles
def test_pc_layer_contract(tmp_path):
  x = jax.random.bernoulli(jax.random.key(0), 0.3, (16, 8)).astype(jnp.int32)
  check_layer_contract(_NLL, x, tmp_path, loss=lambda m, x: jnp.mean(m(x).astype(jnp.float32)))
