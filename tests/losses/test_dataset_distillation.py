"""MTT loss and TESLA's constant-memory gradient [60] against independent float64 NumPy references.

References, none derived from the library's code:
  - a linear-regression student (l = 1/(2b) ||X w - y||^2), for which the inner gradient, TESLA's Eq. 6 and the
    unrolled trajectory have closed forms in NumPy; full BPTT is checked against central finite differences of the
    NumPy objective (float64);
  - on a small tanh MLP: TESLA == jax autodiff through the first-order unroll (the paper's Eq. 6), == full BPTT at
    N = 1, and != full BPTT at N > 1 (the second-order terms Eq. 6 drops);
  - compiled memory: TESLA's temp buffer is the same at N = 2, 8 while BPTT's grows.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods import losses
from jaxlib_methods.losses import dataset_distillation as dd


def _lin_loss(w, x, y):
  return 0.5 * jnp.mean(jnp.sum((x @ w["w"] - y) ** 2, axis=-1))


def _np_unroll(w0, x, y, lr, idx):
  w = w0.copy()
  for rows in idx:
    xb, yb = x[rows], y[rows]
    w = w - lr * xb.T @ (xb @ w - yb) / len(rows)
  return w


def _np_mtt(w0, wt, x, y, lr, idx):
  w = _np_unroll(w0, x, y, lr, idx)
  return np.sum((w - wt) ** 2) / np.sum((w0 - wt) ** 2)


def _np_tesla(w0, wt, x, y, lr, idx):
  """TESLA Eq. 6 for the linear student: d/dX_i <v, X_i^T (X_i w_i - y_i) / b> = ((X_i w_i - y_i) v^T + X_i v w_i^T) / b
  (v, w matrices [d, k]; <A, B> the Frobenius product), with v = beta (theta*_M - theta*_0) + beta^2 G."""
  w, ws, gsum = w0.copy(), [], np.zeros_like(w0)
  for rows in idx:
    xb, yb = x[rows], y[rows]
    g = xb.T @ (xb @ w - yb) / len(rows)
    ws.append(w)
    gsum += g
    w = w - lr * g
  v = lr * (wt - w0) + lr ** 2 * gsum
  out = np.zeros_like(x)
  for rows, wi in zip(idx, ws):
    xb, yb = x[rows], y[rows]
    d = ((xb @ wi - yb) @ v.T + xb @ v @ wi.T) / len(rows)
    np.add.at(out, rows, 2.0 / np.sum((w0 - wt) ** 2) * d)
  return out


def _lin_problem(seed=0, n=6, d=3, k=2):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(d, k)), rng.normal(size=(d, k)), rng.normal(size=(n, d)), rng.normal(size=(n, k)))


def test_linear_student_matches_numpy_transcriptions_float64():
  w0, wt, x, y = _lin_problem()
  idx = np.array([[0, 1, 2], [3, 4, 5], [1, 3, 5], [0, 2, 2]])  # a repeated row inside a batch, and across steps
  lr = 0.3
  with jax.enable_x64(True):
    @jax.jit
    def run(*args):  # one program: TESLA, full BPTT, the unroll and the direct MTT loss
      end = dd.unrolled_sgd(_lin_loss, args[0], args[2], args[3], lr=lr, batch_indices=jnp.asarray(idx))
      return (dd.tesla_grad(_lin_loss, *args, lr=lr, batch_indices=jnp.asarray(idx)),
              dd.mtt_bptt_grad(_lin_loss, *args, lr=lr, batch_indices=jnp.asarray(idx)), end,
              losses.mtt_loss(end, args[0], args[1]))

    t, b, end, direct = run({"w": jnp.asarray(w0)}, {"w": jnp.asarray(wt)}, jnp.asarray(x), jnp.asarray(y))
  ref = _np_mtt(w0, wt, x, y, lr, idx)
  np.testing.assert_allclose(np.asarray(end["w"]), _np_unroll(w0, x, y, lr, idx), rtol=1e-12)
  for value in (t.loss, b.loss, direct):
    np.testing.assert_allclose(float(value), ref, rtol=1e-12)
  np.testing.assert_allclose(np.asarray(t.syn_x), _np_tesla(w0, wt, x, y, lr, idx), rtol=1e-10, atol=1e-12)
  # full BPTT against central finite differences of the NumPy objective (in x and in the learning rate)
  eps = 1e-6
  fd = np.zeros_like(x)
  for i in np.ndindex(x.shape):
    e = np.zeros_like(x)
    e[i] = eps
    fd[i] = (_np_mtt(w0, wt, x + e, y, lr, idx) - _np_mtt(w0, wt, x - e, y, lr, idx)) / (2 * eps)
  np.testing.assert_allclose(np.asarray(b.syn_x), fd, rtol=1e-6, atol=1e-8)
  fd_lr = (_np_mtt(w0, wt, x, y, lr + eps, idx) - _np_mtt(w0, wt, x, y, lr - eps, idx)) / (2 * eps)
  np.testing.assert_allclose(float(b.lr), fd_lr, rtol=1e-6)
  # TESLA's lr gradient: at fixed G, d/dbeta ||theta_0 - beta G - theta*||^2 / den  (official code)
  g_sum = (w0 - _np_unroll(w0, x, y, lr, idx)) / lr
  r = w0 - lr * g_sum - wt
  np.testing.assert_allclose(float(t.lr), -2 * np.sum(g_sum * r) / np.sum((w0 - wt) ** 2), rtol=1e-10)


def _mlp(p, x):
  return jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"]


def _ce(p, x, y):
  return optax.losses.softmax_cross_entropy_with_integer_labels(_mlp(p, x), y).mean()


def _mlp_problem(dtype):
  k = jax.random.split(jax.random.key(0), 4)
  p0 = {"w1": jax.random.normal(k[0], (4, 8), dtype), "b1": jnp.zeros(8, dtype),
        "w2": jax.random.normal(k[1], (8, 3), dtype)}
  pt = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(k[2], a.shape, dtype), p0)
  return p0, pt, jax.random.normal(k[3], (6, 4), dtype), jnp.arange(6) % 3


def _rel(a, b):
  return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


@pytest.mark.slow  # ~20 s of compilation on the loaded 2-core machine; the linear test above is the default-run check
def test_mlp_tesla_equals_eq6_autodiff_and_bptt_at_one_step_under_jit_float32():
  p0, pt, x, y = _mlp_problem(jnp.float32)
  idx5 = jnp.array([[0, 1, 2], [3, 4, 5], [0, 2, 4], [1, 3, 5], [5, 0, 1]])

  @jax.jit
  def grads(x):
    kw1, kw5 = dict(lr=0.2, batch_indices=idx5[:1]), dict(lr=0.2, batch_indices=idx5)
    eq6 = jax.grad(lambda x: losses.mtt_loss(dd.unrolled_sgd(_ce, p0, x, y, first_order=True, **kw5), p0, pt))(x)
    return {"1": (dd.tesla_grad(_ce, p0, pt, x, y, **kw1), dd.mtt_bptt_grad(_ce, p0, pt, x, y, **kw1)),
            "5": (dd.tesla_grad(_ce, p0, pt, x, y, **kw5), dd.mtt_bptt_grad(_ce, p0, pt, x, y, **kw5), eq6)}

  out = grads(x)
  assert out["5"][0].syn_x.dtype == jnp.float32
  assert _rel(out["5"][0].syn_x, out["5"][2]) < 1e-5             # TESLA == autodiff of the paper's Eq. 6
  for n in ("1", "5"):
    np.testing.assert_allclose(float(out[n][0].loss), float(out[n][1].loss), rtol=1e-6)
  assert _rel(out["1"][0].syn_x, out["1"][1].syn_x) < 1e-5       # one step: TESLA is full BPTT
  assert _rel(out["1"][0].lr, out["1"][1].lr) < 1e-5
  assert _rel(out["5"][0].syn_x, out["5"][1].syn_x) > 1e-3       # N > 1: Eq. 6 drops the second-order terms


@pytest.mark.slow  # six compilations; the experiment tesla_mtt measures the same at three step counts
def test_compiled_memory_flat_for_tesla_growing_for_bptt():
  p0, pt, x, y = _mlp_problem(jnp.float32)
  mem = {}
  for n in (2, 8):
    idx = jnp.tile(jnp.arange(6), (n, 1))
    for name, fn in (("tesla", dd.tesla_grad), ("bptt", dd.mtt_bptt_grad)):
      f = jax.jit(lambda x, fn=fn, idx=idx: fn(_ce, p0, pt, x, y, lr=0.1, batch_indices=idx))
      mem[name, n] = f.lower(x).compile().memory_analysis().temp_size_in_bytes
  assert mem["tesla", 8] == mem["tesla", 2], mem
  assert mem["bptt", 8] > 2 * mem["bptt", 2], mem


def test_soft_labels_and_bad_input():
  z = jnp.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
  np.testing.assert_allclose(np.asarray(losses.tesla_soft_labels(z, temperature=2.0)),
                             np.exp(np.asarray(z) / 2) / np.exp(np.asarray(z) / 2).sum(-1, keepdims=True), rtol=1e-6)
  assert losses.tesla_soft_labels(z.astype(jnp.bfloat16)).dtype == jnp.float32
  with pytest.raises(ValueError, match="temperature"):
    losses.tesla_soft_labels(z, temperature=0.0)
  with pytest.raises(TypeError, match="logits"):
    losses.tesla_soft_labels(jnp.ones((2, 3), jnp.int32))
  w0, wt, x, y = _lin_problem()
  p0, pt = {"w": jnp.asarray(w0, jnp.float32)}, {"w": jnp.asarray(wt, jnp.float32)}
  xs, ys = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
  idx = jnp.array([[0, 1], [2, 3]])
  with pytest.raises(ValueError, match="batch_indices"):
    dd.tesla_grad(_lin_loss, p0, pt, xs, ys, lr=0.1, batch_indices=jnp.array([[0, 6]]))
  with pytest.raises(ValueError, match="batch_indices"):
    dd.tesla_grad(_lin_loss, p0, pt, xs, ys, lr=0.1, batch_indices=jnp.array([0, 1]))
  with pytest.raises(TypeError, match="batch_indices"):
    dd.mtt_bptt_grad(_lin_loss, p0, pt, xs, ys, lr=0.1, batch_indices=idx.astype(jnp.float32))
  with pytest.raises(ValueError, match="lr"):
    dd.unrolled_sgd(_lin_loss, p0, xs, ys, lr=-0.1, batch_indices=idx)
  with pytest.raises(ValueError, match="syn_y"):
    dd.tesla_grad(_lin_loss, p0, pt, xs, ys[:3], lr=0.1, batch_indices=idx)
  with pytest.raises(TypeError, match="syn_x"):
    dd.tesla_grad(_lin_loss, p0, pt, xs.astype(jnp.int32), ys, lr=0.1, batch_indices=idx)
  with pytest.raises(ValueError, match="target_params"):
    losses.mtt_loss(p0, p0, {"w": jnp.zeros((2, 2))})
  assert np.isnan(float(losses.mtt_loss(p0, p0, p0)))  # theta*_t == theta*_{t+M}: the normaliser is 0
  half = {"w": p0["w"].astype(jnp.bfloat16)}
  assert losses.mtt_loss(half, half, {"w": pt["w"].astype(jnp.bfloat16)}).dtype == jnp.float32
