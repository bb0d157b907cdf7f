"""Energy-based CBM [58] (issue 20): the three energies against a float64 NumPy transcription of the paper's networks
from the module's weights; p(c_k | x), p(y | x) and an intervention's conditionals against brute-force NumPy
enumeration over all concept configurations (itertools.product); the loss against NumPy; special case: with
lambda_g = 0 the concepts are independent given x with the concept network's own Boltzmann marginals; the NNX
contract; errors."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn import ECBM, concept_configurations, ecbm_conditionals, ecbm_joint_log_probs, ecbm_loss
from tests.nn._layer_contract import check_layer_contract


def _np_energies(m, z):
  f = lambda a: np.asarray(a, np.float64)
  unit = lambda e: e / np.linalg.norm(e, axis=-1, keepdims=True)
  relu = lambda a: np.maximum(a, 0)
  u, v = unit(f(m.class_emb_mh[...])), f(m.concept_emb_kvh[...])
  h = z @ f(m.xy_fc.kernel[...]) + f(m.xy_fc.bias[...])
  e_class = np.stack([relu(h + h * u[j]) @ f(m.xy_out.kernel[...])[:, 0] for j in range(u.shape[0])], -1) \
      + f(m.xy_out.bias[...])[0]
  hc = z @ f(m.xc_fc.kernel[...]) + f(m.xc_fc.bias[...])
  e_concept = np.zeros((z.shape[0], v.shape[0], 2))
  for k in range(v.shape[0]):
    for val in (0, 1):
      e_concept[:, k, val] = relu(hc + hc * unit(v[k, val])) @ f(m.xc_out_kh[...])[k] + f(m.xc_out_k[...])[k]

  def e_global(c):  # c: tuple of K bits
    emb = np.concatenate([v[k, c[k]] for k in range(len(c))])
    g = emb @ f(m.concept_proj.kernel[...]) + f(m.concept_proj.bias[...])
    return np.array([relu(g + g * u[j]) @ f(m.cy_out.kernel[...])[:, 0] + f(m.cy_out.bias[...])[0]
                     for j in range(u.shape[0])])
  return e_class, e_concept, e_global


def test_ecbm_probabilities_match_brute_force_enumeration():
  rng = np.random.default_rng(0)
  b, d, k, m, lc, lg = 3, 5, 3, 4, 0.7, 1.3
  model = ECBM(d, k, m, hidden=6, rngs=nnx.Rngs(1))
  z = rng.normal(size=(b, d))
  observed = np.array([[-1, 1, -1], [0, -1, -1], [-1, -1, -1]])
  concepts = rng.integers(0, 2, size=(b, k))
  labels = rng.integers(0, m, size=(b,))

  @jax.jit
  def run(z, o, concepts, labels):
    return (ecbm_conditionals(model, z, observed=o, lambda_c=lc, lambda_g=lg),
            ecbm_conditionals(model, z, lambda_c=lc, lambda_g=lg),
            ecbm_conditionals(model, z, lambda_c=lc, lambda_g=0.0)[0],
            ecbm_joint_log_probs(model, z, lambda_c=lc, lambda_g=lg),
            ecbm_loss(model, z, concepts, labels, lambda_c=lc, lambda_g=lg))

  (pc, py), (pc0, py0), pc_ind, logp, loss = jax.tree.map(np.asarray, run(
      jnp.asarray(z, jnp.float32), jnp.asarray(observed), jnp.asarray(concepts), jnp.asarray(labels)))
  e_class, e_concept, e_global = _np_energies(model, z)
  for i in range(b):
    for obs, pc_got, py_got in ((observed[i], pc[i], py[i]), (np.full(k, -1), pc0[i], py0[i])):
      joint = {}
      for c in itertools.product((0, 1), repeat=k):
        if any(o >= 0 and o != cv for o, cv in zip(obs, c)):
          continue
        e = e_class[i] + lc * sum(e_concept[i, kk, c[kk]] for kk in range(k)) + lg * e_global(c)
        joint[c] = np.exp(-e)
      total = sum(w.sum() for w in joint.values())
      p_y = sum(joint.values()) / total
      p_c = np.array([sum(w.sum() for c, w in joint.items() if c[kk] == 1) / total for kk in range(k)])
      np.testing.assert_allclose(py_got, p_y, rtol=2e-5, atol=1e-6)
      np.testing.assert_allclose(pc_got, p_c, rtol=2e-5, atol=1e-6)
    for kk in range(k):
      if observed[i, kk] >= 0:
        np.testing.assert_allclose(pc[i, kk], observed[i, kk], atol=1e-6)
  configs = np.asarray(concept_configurations(k))
  assert {tuple(r) for r in configs.astype(int)} == set(itertools.product((0, 1), repeat=k)) and len(configs) == 2 ** k
  np.testing.assert_allclose(np.exp(logp).sum((1, 2)), 1.0, rtol=1e-5)
  # lambda_g = 0: independent concepts, p(c_k = 1 | x) = the concept network's Boltzmann marginal
  ref = np.exp(-lc * e_concept[..., 1]) / (np.exp(-lc * e_concept[..., 0]) + np.exp(-lc * e_concept[..., 1]))
  np.testing.assert_allclose(np.asarray(pc_ind), ref, rtol=2e-5, atol=1e-6)
  # the loss
  lse = lambda a: np.log(np.exp(a).sum(-1))
  for i in range(b):
    l_class = e_class[i, labels[i]] + lse(-e_class[i])
    l_concept = sum(e_concept[i, kk, concepts[i, kk]] + lse(-e_concept[i, kk]) for kk in range(k))
    eg = e_global(tuple(concepts[i]))
    l_global = eg[labels[i]] + lse(-eg)
    np.testing.assert_allclose(loss[i], l_class + lc * l_concept + lg * l_global, rtol=2e-5)
  # errors (all raised before any computation)
  zz = jnp.ones((2, d))
  with pytest.raises(ValueError, match="num_classes"):
    ECBM(4, 2, 1, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="D=5"):
    model(jnp.ones((2, 4)))
  with pytest.raises(ValueError, match="concepts must be 0/1"):
    ecbm_loss(model, zz, jnp.full((2, k), 2), jnp.zeros((2,), jnp.int32))
  with pytest.raises(ValueError, match="labels"):
    ecbm_loss(model, zz, jnp.zeros((2, k), jnp.int32), jnp.full((2,), m))
  with pytest.raises(ValueError, match="observed"):
    ecbm_conditionals(model, zz, observed=jnp.full((2, k), 2))
  with pytest.raises(ValueError, match="num_concepts"):
    concept_configurations(17)
  with pytest.raises(ValueError, match="lambda_c"):
    ecbm_loss(model, zz, jnp.zeros((2, k), jnp.int32), jnp.zeros((2,), jnp.int32), lambda_c=-1.0)


class _Wrap(nnx.Module):
  def __init__(self, param_dtype):
    self.m = ECBM(6, 3, 4, hidden=8, rngs=nnx.Rngs(0), param_dtype=param_dtype)

  def __call__(self, x):
    return self.m.class_energy(x)


@pytest.mark.slow  # nnx.jit, split/merge train step, bf16, orbax: a few seconds of compiles
def test_ecbm_layer_contract(tmp_path):
  x = jax.random.normal(jax.random.key(0), (8, 6))
  c = (jnp.arange(24).reshape(8, 3) % 2).astype(jnp.int32)
  y = jnp.arange(8) % 4
  check_layer_contract(_Wrap, x, tmp_path,
                       loss=lambda m, x: jnp.mean(ecbm_loss(m.m, x, c, y).astype(jnp.float32)))
