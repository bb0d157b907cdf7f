"""AST's smooth-expert pieces [48] and DCC's contrastive gradient matching [64] against float64 NumPy references.

References, none derived from the library's code:
  - AST (arXiv:2310.10541): the clipping loss is lambda_e * CE transcribed in NumPy (log-sum-exp by hand) with the
    official schedule, values and gradients (central finite differences); the gradient penalty lambda (||g|| - 1)^2;
    the balanced inner weight with `math.log(., 5)` as in the official distill.py; the weight perturbation's defining
    property ||(theta' - theta) / theta||_F = alpha per tensor; the intermediate matching loss for a linear student
    whose unrolled SGD is written out in NumPy, values and finite-difference gradients in the synthetic inputs.
  - DCC (arXiv:2202.02916): DC's distance sum_i (1 - cos) over output nodes written with NumPy loops; DC and DCC
    from it; with one class DCC == DC (the paper's special case); gradients by central finite differences.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import losses
from jaxlib_methods.losses import dataset_distillation as dd


def _np_ce(z, y):
  m = z.max(-1, keepdims=True)
  lse = (m + np.log(np.exp(z - m).sum(-1, keepdims=True)))[:, 0]
  return lse - z[np.arange(len(y)), y]


def _fd(f, x, eps=1e-6):
  g = np.zeros_like(x)
  for i in np.ndindex(x.shape):
    xp, xm = x.copy(), x.copy()
    xp[i] += eps
    xm[i] -= eps
    g[i] = (f(xp) - f(xm)) / (2 * eps)
  return g


def test_ast_expert_pieces_match_numpy_float64():
  rng = np.random.default_rng(0)
  z, y = rng.normal(size=(5, 4)), np.array([0, 3, 1, 2, 3])
  gi = rng.normal(size=(5, 2, 3))
  t_max, ts = 25, np.arange(26)
  params = {"w": rng.normal(size=(6, 5)) + 3.0, "b": rng.normal(size=(5,)) + 3.0}
  es, lams = np.array([0, 4, 10, 11, 40]), np.array([0.5, 0.6, 0.9, 1.0, 1.0])

  @jax.jit
  def everything(z, gi, ts, params, key):   # one program: each piece compiled once
    clip = jax.vmap(jax.value_and_grad(lambda z, e: dd.ast_clipping_loss(z, jnp.asarray(y), epoch=e).sum()),
                    in_axes=(None, 0))(z, jnp.asarray(es))
    own = dd.ast_clipping_loss(z, jnp.asarray(y), epoch=1, schedule=(1.0, 0.25))
    return (clip, own, dd.ast_gradient_penalty(gi, weight=0.1), dd.ast_balanced_inner_weight(ts, max_start_epoch=t_max),
            dd.ast_weight_perturbation(key, params, alpha=0.7, drop_rate=0.5))

  with jax.enable_x64(True):
    (vals, grads), own, pen, bal, out = everything(z, gi, ts, params, jax.random.key(1))
  np.testing.assert_allclose(np.asarray(vals), lams * _np_ce(z, y).sum(), rtol=1e-12)
  fd = _fd(lambda v: _np_ce(v, y).sum(), z)
  np.testing.assert_allclose(np.asarray(grads), lams[:, None, None] * fd, rtol=1e-6, atol=1e-8)
  np.testing.assert_allclose(np.asarray(own), 0.25 * _np_ce(z, y), rtol=1e-12)
  np.testing.assert_allclose(np.asarray(pen), 0.1 * (np.sqrt((gi.reshape(5, -1) ** 2).sum(-1)) - 1.0) ** 2, rtol=1e-12)
  # balanced inner-loop weight: the official `ce_loss *= math.log(t - T//2 + 8, 5)` / `/= math.log(T//2 - t + 8, 5)`
  ref = [math.log(t - t_max // 2 + 8, 5) if t >= t_max // 2 else 1.0 / math.log(t_max // 2 - t + 8, 5) for t in ts]
  np.testing.assert_allclose(np.asarray(bal), ref, rtol=1e-6)
  # weight perturbation: theta' = theta + alpha (d / ||d||_F) * theta, so ||(theta' - theta) / theta||_F = alpha
  for k in params:
    rel = (np.asarray(out[k], np.float64) - params[k]) / params[k]
    assert np.sqrt((rel ** 2).sum()) == pytest.approx(0.7, rel=1e-5)
    assert out[k].shape == params[k].shape
  assert 0.2 < np.mean(np.asarray(out["w"]) == params["w"]) < 0.8  # about half of d dropped out


def _lin(w, x, y):
  return 0.5 * jnp.mean(jnp.sum((x @ w - y) ** 2, axis=-1))


def _np_intermediate(experts, x, y, lr, idx):
  """L_MTT(final) + sum_{k<M} (k/M) L_MTT(theta_{kN/M}; theta*_0, theta*_k), linear student, NumPy."""
  m = len(experts) - 1
  seg = len(idx) // m
  w, total = experts[0].copy(), 0.0
  for k in range(1, m + 1):
    for rows in idx[(k - 1) * seg:k * seg]:
      xb, yb = x[rows], y[rows]
      w = w - lr * xb.T @ (xb @ w - yb) / len(rows)
    l_k = np.sum((w - experts[k]) ** 2) / np.sum((experts[0] - experts[k]) ** 2)
    total += (1.0 if k == m else k / m) * l_k
  return total


def test_ast_intermediate_matching_matches_numpy_and_reduces_to_mtt():
  rng = np.random.default_rng(1)
  experts = rng.normal(size=(4, 3, 2))          # M = 3 expert epochs after the start
  x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
  idx = np.array([[0, 1], [2, 3], [4, 0], [1, 2], [3, 4], [0, 2]], np.int32)   # N = 6 = 2 steps per segment
  @jax.jit
  def everything(experts, x):   # one program
    fn = lambda x: dd.ast_intermediate_matching_loss(_lin, experts, x, jnp.asarray(y), lr=0.1,
                                                     batch_indices=jnp.asarray(idx))
    one = dd.ast_intermediate_matching_loss(_lin, experts[jnp.array([0, 3])], x, jnp.asarray(y), lr=0.1,
                                            batch_indices=jnp.asarray(idx))
    end = dd.unrolled_sgd(_lin, experts[0], x, jnp.asarray(y), lr=0.1, batch_indices=jnp.asarray(idx))
    return jax.value_and_grad(fn)(x), one, dd.mtt_loss(end, experts[0], experts[3])

  with jax.enable_x64(True):
    (val, g), one, mtt = everything(experts, x)
  assert float(val) == pytest.approx(_np_intermediate(experts, x, y, 0.1, idx), rel=1e-10)
  np.testing.assert_allclose(np.asarray(g), _fd(lambda v: _np_intermediate(experts, v, y, 0.1, idx), x),
                             rtol=1e-5, atol=1e-8)
  assert float(one) == pytest.approx(float(mtt), rel=1e-12)   # M = 1: the plain MTT loss after `unrolled_sgd`


def _np_dc_distance(ga, gb):
  total = 0.0
  for a, b in zip(ga, gb):
    if a.ndim < 2:
      continue
    a2, b2 = np.moveaxis(a, -1, 0).reshape(a.shape[-1], -1), np.moveaxis(b, -1, 0).reshape(b.shape[-1], -1)
    for i in range(a2.shape[0]):
      total += 1.0 - a2[i] @ b2[i] / (np.linalg.norm(a2[i]) * np.linalg.norm(b2[i]) + 1e-6)   # official distance_wb
  return total


def test_dc_and_dcc_match_numpy_and_dcc_equals_dc_for_one_class():
  rng = np.random.default_rng(2)
  c = 3
  real = {"w": rng.normal(size=(c, 4, 3)), "b": rng.normal(size=(c, 3)), "k": rng.normal(size=(c, 2, 2, 3))}
  syn = {"w": rng.normal(size=(c, 4, 3)), "b": rng.normal(size=(c, 3)), "k": rng.normal(size=(c, 2, 2, 3))}
  order = ("b", "k", "w")  # jax's sorted-key leaf order
  @jax.jit
  def everything(real, syn):   # one program
    one_r, one_s = jax.tree.map(lambda v: v[:1], real), jax.tree.map(lambda v: v[:1], syn)
    g = jax.grad(lambda w: losses.dcc_gradient_matching_loss(real, dict(syn, w=w)))(syn["w"])
    return (losses.dc_gradient_matching_loss(real, syn), losses.dcc_gradient_matching_loss(real, syn),
            losses.dcc_gradient_matching_loss(one_r, one_s), losses.dc_gradient_matching_loss(one_r, one_s), g,
            losses.dc_gradient_distance(real, jax.tree.map(lambda v: 2.5 * v, real)))

  with jax.enable_x64(True):
    dc, dcc, dcc1, dc1, g, scaled = everything(real, syn)
  ref_dc = sum(_np_dc_distance([real[k][i] for k in order], [syn[k][i] for k in order]) for i in range(c))
  ref_dcc = _np_dc_distance([real[k].sum(0) for k in order], [syn[k].sum(0) for k in order])
  assert float(dc) == pytest.approx(ref_dc, rel=1e-12)
  assert float(dcc) == pytest.approx(ref_dcc, rel=1e-12)
  assert float(dcc1) == pytest.approx(float(dc1), rel=1e-15)      # one class: DCC is DC (the paper's special case)
  fd = _fd(lambda w: _np_dc_distance([real[k].sum(0) for k in order],
                                     [syn["b"].sum(0), syn["k"].sum(0), w.sum(0)]), syn["w"])
  np.testing.assert_allclose(np.asarray(g), fd, rtol=1e-5, atol=1e-8)
  ref_scaled = _np_dc_distance([real[k] for k in order], [2.5 * real[k] for k in order])
  assert float(scaled) == pytest.approx(ref_scaled, rel=1e-12)
  assert 0 < float(scaled) < 1e-5                                # scale invariant up to the official +1e-6


def test_dc_distance_zero_column_counts_one_with_finite_gradient():
  # a dead unit gives a zero gradient column: the official +1e-6 makes its term 1 - 0 = 1, and torch's norm has
  # gradient 0 at 0; jnp.linalg.norm's NaN there would poison the whole distilled set's gradient (audit 2026-12-03)
  rng = np.random.default_rng(5)
  a = rng.normal(size=(5, 3)).astype(np.float32)
  a[:, 0] = 0.0
  b = rng.normal(size=(5, 3)).astype(np.float32)
  val, g = jax.value_and_grad(lambda b: losses.dc_gradient_distance({"w": jnp.asarray(a)}, {"w": b}))(jnp.asarray(b))
  assert float(val) == pytest.approx(_np_dc_distance([a.astype(np.float64)], [b.astype(np.float64)]), rel=1e-5)
  assert np.isfinite(np.asarray(g)).all()
  g0 = jax.grad(lambda a: losses.dc_gradient_distance({"w": a}, {"w": jnp.asarray(b)}))(jnp.asarray(a))
  assert np.isfinite(np.asarray(g0)).all()


def test_bad_input_is_rejected():
  z, y = jnp.zeros((2, 3)), jnp.array([0, 1])
  with pytest.raises(ValueError, match="epoch"):
    dd.ast_clipping_loss(z, y, epoch=-1)
  with pytest.raises(ValueError, match="schedule"):
    dd.ast_clipping_loss(z, y, epoch=0, schedule=(0.5, 1.5))
  nan, half = jax.jit(lambda e, zb: (dd.ast_clipping_loss(z, y, epoch=e), dd.ast_clipping_loss(zb, y, epoch=e)))(
      -1, z.astype(jnp.bfloat16) + 1)   # traced bad epoch: NaN rows (rule 5); bf16 in, bf16 out
  assert np.isnan(np.asarray(nan)).all() and half.dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="weight"):
    dd.ast_gradient_penalty(jnp.ones((2, 3)), weight=-1.0)
  with pytest.raises(ValueError, match="start_epoch"):
    dd.ast_balanced_inner_weight(30, max_start_epoch=25)
  with pytest.raises(ValueError, match="max_start_epoch"):
    dd.ast_balanced_inner_weight(3, max_start_epoch=0)
  with pytest.raises(ValueError, match="drop_rate"):
    dd.ast_weight_perturbation(jax.random.key(0), {"w": jnp.ones(3)}, drop_rate=1.0)
  with pytest.raises(ValueError, match="multiple"):
    dd.ast_intermediate_matching_loss(_lin, jnp.zeros((3, 2, 1)), jnp.ones((4, 2)), jnp.ones((4, 1)), lr=0.1,
                                      batch_indices=jnp.zeros((3, 2), jnp.int32))
  with pytest.raises(ValueError, match="class axis"):
    losses.dcc_gradient_matching_loss({"w": jnp.ones((2, 3, 4)), "v": jnp.ones((3, 3, 4))},
                                      {"w": jnp.ones((2, 3, 4)), "v": jnp.ones((3, 3, 4))})
  with pytest.raises(ValueError, match="g_syn_by_class"):
    losses.dcc_gradient_matching_loss({"w": jnp.ones((2, 3, 4))}, {"w": jnp.ones((2, 3, 5))})
  with pytest.raises(TypeError, match="grads_a"):
    losses.dc_gradient_distance({"w": jnp.ones((3, 4), jnp.int32)}, {"w": jnp.ones((3, 4), jnp.int32)})
