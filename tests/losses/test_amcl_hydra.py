"""AMCL [184] and Hydra [116] (ls19b, issue 19) against float64 NumPy transcriptions (AMCL: Eq. (2) + the authors'
regulariser; Hydra: the official SimLAP `disparate_loss` / `multipos_ce_loss`), SimCLR's NT-Xent (optax) as AMCL's
special case, the regulariser's closed-form minimiser, the PairGate module under nnx.jit, and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxlib_methods import losses, nn


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _np_amcl(z1, z2, tau, beta):
  """AMCL transcription: per head c, NT-Xent over [z1; z2] with pair temperatures, + beta Omega on positives."""
  b, c, d = z1.shape
  total = np.zeros(b)
  for h in range(c):
    v = _unit(np.concatenate([z1[:, h], z2[:, h]]))
    t = np.broadcast_to(tau[h], (2 * b, 2 * b))
    per = np.zeros(2 * b)
    for i in range(2 * b):
      p = (i + b) % (2 * b)
      others = [k for k in range(2 * b) if k != i]
      lse = np.log(np.sum([np.exp(v[i] @ v[k] / t[i, k]) for k in others]))
      per[i] = -v[i] @ v[p] / t[i, p] + lse + beta * (d / 2 * np.log(t[i, p]) + 1 / t[i, p])
    total += (per[:b] + per[b:]) / 2
  return total


def _np_hydra_official(z, y1, posy, gate, tau):
  """The official SimLAP batch loss (multipos_ce_loss with the row-mean shift), in float64 NumPy."""
  f1 = _unit(z * gate)
  f2 = _unit(z[None, :, :] * gate[:, None, :])
  logits = np.einsum("bj,bnj->bn", f1, f2) / tau
  c1 = y1[:, None] == y1[None, :]
  c2 = posy[:, None] == y1[None, :]
  neg_mask = ~(c1 | c2)
  logits = logits - logits.mean(1, keepdims=True)
  sim = np.exp(logits)
  neg = (sim * neg_mask).sum(1, keepdims=True)
  return np.sum(c2 * (np.log(sim + neg) - logits)) / c2.sum()


@pytest.mark.slow  # float64 transcription + finite differences: many small compiles (default-run budget)
def test_amcl_vs_numpy_ntxent_special_case_and_regularizer_float64():
  rng = np.random.default_rng(0)
  b, c, d = 4, 2, 3
  z1, z2 = rng.normal(size=(b, c, d)), rng.normal(size=(b, c, d))
  tau = rng.uniform(0.2, 1.5, size=(c, 2 * b, 2 * b))
  with jax.enable_x64(True):
    f = jax.jit(lambda a, t: losses.amcl_loss(a, z2, t, beta=0.3))
    np.testing.assert_allclose(np.asarray(f(z1, tau)), _np_amcl(z1, z2, tau, 0.3), rtol=1e-11)
    g1, gt = jax.grad(lambda a, t: f(a, t).sum(), argnums=(0, 1))(jnp.asarray(z1), jnp.asarray(tau))
    eps = 1e-6
    for idx in [(0, 0, 0), (2, 1, 2), (3, 0, 1)]:
      e = np.zeros_like(z1)
      e[idx] = eps
      fd = (_np_amcl(z1 + e, z2, tau, 0.3).sum() - _np_amcl(z1 - e, z2, tau, 0.3).sum()) / (2 * eps)
      np.testing.assert_allclose(float(g1[idx]), fd, rtol=1e-6, atol=1e-9)
    for idx in [(0, 0, 4), (1, 5, 1), (1, 2, 3)]:
      e = np.zeros_like(tau)
      e[idx] = eps
      fd = (_np_amcl(z1, z2, tau + e, 0.3).sum() - _np_amcl(z1, z2, tau - e, 0.3).sum()) / (2 * eps)
      np.testing.assert_allclose(float(gt[idx]), fd, rtol=1e-6, atol=1e-9)
    # one head, a fixed temperature, beta = 0: SimCLR's NT-Xent (optax averages the same 2B anchor terms)
    emb = np.concatenate([z1[:, 0], z2[:, 0]])
    ids = np.concatenate([np.arange(b), np.arange(b)])
    one = losses.amcl_loss(z1[:, :1], z2[:, :1], 0.5, beta=0.0)
    np.testing.assert_allclose(float(one.mean()), float(optax.losses.ntxent(emb, ids, temperature=0.5)), rtol=1e-11)
    # per-head temperatures [C] equal the same temperature broadcast to [C, 2B, 2B]
    th = np.array([0.3, 0.9])
    np.testing.assert_allclose(np.asarray(losses.amcl_loss(z1, z2, th)),
                               np.asarray(losses.amcl_loss(z1, z2, np.broadcast_to(th[:, None, None], tau.shape))),
                               rtol=1e-12)
    # the regulariser: Omega(tau) = d/2 log tau + 1/tau; -s/tau + Omega is minimised at tau* = 2 (1 - s) / d
    s, dd = 0.4, 16
    tau_star = 2 * (1 - s) / dd
    dobj = jax.grad(lambda t: -s / t + losses.amcl_temperature_regularizer(t, dd))(tau_star)
    assert abs(float(dobj)) < 1e-9
    np.testing.assert_allclose(float(losses.amcl_temperature_regularizer(jnp.float64(0.7), 5)),
                               2.5 * np.log(0.7) + 1 / 0.7, rtol=1e-14)


@pytest.mark.slow  # float64 transcription + finite differences: many small compiles (default-run budget)
def test_hydra_vs_official_numpy_and_pair_gate_float64():
  rng = np.random.default_rng(1)
  b, d = 8, 5
  z = rng.normal(size=(b, d))
  y = np.array([0, 1, 2, 3, 0, 1, 2, 3])
  posy = np.array([1, 3, 0, 2, 2, 0, 3, 1])  # arbitrary class pairs: every anchor has 2 positives in the batch
  gate = rng.uniform(0.05, 1.0, size=(b, d))
  with jax.enable_x64(True):
    f = jax.jit(lambda z, g: losses.hydra_loss(z, y, posy, g, temperature=0.1))
    n_pos = (posy[:, None] == y[None, :]).sum(1)
    official = lambda z, g: float((np.asarray(f(z, g)) * n_pos).sum() / n_pos.sum())
    np.testing.assert_allclose(official(z, gate), _np_hydra_official(z, y, posy, gate, 0.1), rtol=1e-11)
    gz, gg = jax.grad(lambda z, g: (f(z, g) * n_pos).sum() / n_pos.sum(), argnums=(0, 1))(jnp.asarray(z),
                                                                                           jnp.asarray(gate))
    eps = 1e-6
    for idx in [(0, 0), (3, 4), (6, 2)]:
      e = np.zeros_like(z)
      e[idx] = eps
      fd = (_np_hydra_official(z + e, y, posy, gate, 0.1) - _np_hydra_official(z - e, y, posy, gate, 0.1)) / (2 * eps)
      np.testing.assert_allclose(float(gz[idx]), fd, rtol=1e-6, atol=1e-9)
      fd = (_np_hydra_official(z, y, posy, gate + e, 0.1) - _np_hydra_official(z, y, posy, gate - e, 0.1)) / (2 * eps)
      np.testing.assert_allclose(float(gg[idx]), fd, rtol=1e-6, atol=1e-9)
    # an anchor whose paired class is absent from the batch contributes 0
    out = losses.hydra_loss(z, y, np.array([9, 3, 0, 2, 2, 0, 3, 1]), gate)
    assert float(out[0]) == 0.0 and np.all(np.asarray(out[1:]) > 0)
  # PairGate: symmetric in (y1, y2), in (0, 1), works through nnx.split / merge under jax.jit
  g = nn.PairGate(4, d, in_dim=8, mlp_dim=16, rngs=nnx.Rngs(0))
  gd, state = nnx.split(g)
  ya, yb = jnp.array([0, 1, 3]), jnp.array([2, 1, 0])
  out = jax.jit(lambda s, a, c: nnx.merge(gd, s)(a, c))(state, ya, yb)
  assert out.shape == (3, d) and bool(jnp.all((out > 0) & (out < 1)))
  np.testing.assert_allclose(np.asarray(out), np.asarray(g(yb, ya)), rtol=1e-6)
  with pytest.raises(ValueError, match="y1"):
    g(jnp.array([4]), jnp.array([0]))


def test_amcl_hydra_bad_input():
  """Every error is raised before any computation (cheap: the default run keeps this one)."""
  z = jnp.ones((3, 2, 4))
  with pytest.raises(ValueError, match="tau"):
    losses.amcl_loss(z, z, 0.0)
  with pytest.raises(ValueError, match="tau"):
    losses.amcl_loss(z, z, jnp.ones(3))
  with pytest.raises(ValueError, match="z2"):
    losses.amcl_loss(z, z[:2], 0.5)
  with pytest.raises(TypeError, match="z1"):
    losses.amcl_loss(z.astype(jnp.int32), z, 0.5)
  with pytest.raises(ValueError, match="beta"):
    losses.amcl_loss(z, z, 0.5, beta=-1.0)
  zz, y = jnp.ones((4, 3)), jnp.array([0, 1, 0, 1])
  with pytest.raises(ValueError, match="gate"):
    losses.hydra_loss(zz, y, y, jnp.ones((4, 2)))
  with pytest.raises(TypeError, match="labels"):
    losses.hydra_loss(zz, y.astype(jnp.float32), y, jnp.ones((4, 3)))
  with pytest.raises(ValueError, match="pair_labels"):
    losses.hydra_loss(zz, y, y[:3], jnp.ones((4, 3)))


@pytest.mark.slow  # compiles several programs (jit NaN rows, bf16/fp16 paths)
def test_amcl_hydra_traced_invalid_values_and_half_precision():
  z = jnp.ones((3, 2, 4))
  assert np.all(np.isnan(np.asarray(jax.jit(losses.amcl_loss)(z, z, jnp.array([0.5, -1.0])))))
  x = jax.random.normal(jax.random.key(0), (3, 2, 4)).astype(jnp.bfloat16)
  assert losses.amcl_loss(x, x, 0.5).dtype == jnp.bfloat16
  zz, y = jnp.ones((4, 3)), jnp.array([0, 1, 0, 1])
  with pytest.raises(ValueError, match="gate"):
    losses.hydra_loss(zz, y, y, jnp.full((4, 3), 1.5))
  bad = jnp.ones((4, 3)).at[2, 0].set(2.0)
  out = np.asarray(jax.jit(losses.hydra_loss)(zz, y, y, bad))
  assert np.isnan(out[2]) and np.all(np.isfinite(np.delete(out, 2)))
  assert losses.hydra_loss(zz.astype(jnp.float16), y, y, jnp.ones((4, 3), jnp.float16)).dtype == jnp.float16
