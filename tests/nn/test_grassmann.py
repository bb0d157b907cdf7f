"""GCR [97]: grassmann_logits vs NumPy (k = 1 is the |cos| classifier; logits depend on the subspace only);
riemannian_sgd_grassmann vs a float64 NumPy transcription of its update, orthonormality after every step, and
convergence to the top-k eigenspace of a Rayleigh quotient (checked with numpy.linalg.eigh); GrassmannClassifier's
NNX contract."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxlib_methods.nn import GrassmannClassifier, grassmann_logits
from jaxlib_methods.optim import grassmann_tangent, qr_retraction, riemannian_sgd_grassmann
from tests.nn._layer_contract import check_layer_contract


def _np_qf(x):
  q, r = np.linalg.qr(x)
  return q * np.sign(np.diag(r))


def _np_step(s, m, d, lr, mu):
  """Float64 NumPy transcription: G = (I - SS^T)D; M = mu M + G; S' = qf(S - lr M); M = (I - S'S'^T) M."""
  eye = np.eye(s.shape[0])
  m = mu * m + (eye - s @ s.T) @ d
  s_new = _np_qf(s - lr * m)
  return s_new, (eye - s_new @ s_new.T) @ m


def test_logits_match_numpy_and_k1_is_abs_cosine():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(5, 6))
  s = np.stack([_np_qf(rng.normal(size=(6, 3))) for _ in range(4)])     # [C=4, d=6, k=3]
  r = _np_qf(rng.normal(size=(3, 3)))
  w = rng.normal(size=(4, 6))
  w1 = w / np.linalg.norm(w, axis=1, keepdims=True)
  got, got_rotated, got_k1 = jax.jit(lambda x, s, sr, w1: (   # one program for the three calls
      grassmann_logits(x, s, scale=2.0), grassmann_logits(x, sr, scale=2.0), grassmann_logits(x, w1)))(
          jnp.asarray(x), jnp.asarray(s), jnp.asarray(s @ r), jnp.asarray(w1[:, :, None]))
  xh = x / np.linalg.norm(x, axis=1, keepdims=True)
  want = 2.0 * np.linalg.norm(np.einsum("nd,cdk->nck", xh, s), axis=-1)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)
  # the logit depends on the subspace, not on its basis: S -> S R, R orthogonal
  np.testing.assert_allclose(np.asarray(got_rotated), want, rtol=1e-5)
  # k = 1: |cos(s_i, x)|
  cos = (x @ w1.T) / np.linalg.norm(x, axis=1, keepdims=True)
  np.testing.assert_allclose(np.asarray(got_k1), np.abs(cos), rtol=1e-5)


def test_update_matches_numpy_and_stays_orthonormal():
  rng = np.random.default_rng(1)
  s0 = _np_qf(rng.normal(size=(7, 3)))
  b = rng.normal(size=(3,))
  tx = riemannian_sgd_grassmann(0.3, 0.8, grassmann_mask={"S": True, "b": False})
  with jax.enable_x64(True):
    params = {"S": jnp.asarray(s0), "b": jnp.asarray(b)}
    state = tx.init(params)
    s, m, mb = s0, np.zeros_like(s0), np.zeros(3)

    @jax.jit
    def step64(g, state, params):   # one compile for the three steps (instead of eager ops)
      u, state = tx.update(g, state, params)
      return optax.apply_updates(params, u), state

    for t in range(3):
      d = rng.normal(size=(7, 3))
      db = rng.normal(size=3)
      params, state = step64({"S": jnp.asarray(d), "b": jnp.asarray(db)}, state, params)
      s, m = _np_step(s, m, d, 0.3, 0.8)
      mb = 0.8 * mb + db
      b = b - 0.3 * mb
      np.testing.assert_allclose(np.asarray(params["S"]), s, atol=1e-12)
      np.testing.assert_allclose(np.asarray(state.trace["S"]), m, atol=1e-12)
      np.testing.assert_allclose(np.asarray(params["b"]), b, atol=1e-12)
  # float32, jitted, 60 steps with large random gradients: ||S^T S - I|| < 1e-6 after every step
  p = {"S": jnp.asarray(s0, jnp.float32)}
  tx = riemannian_sgd_grassmann(0.5, 0.9)
  st = tx.init(p)

  @jax.jit
  def step(t, st, p):   # the step and both checks in one program (the same ops, no eager dispatch per step)
    u, st = tx.update({"S": jax.random.normal(jax.random.PRNGKey(t), (7, 3)) * 10}, st, p)
    p = optax.apply_updates(p, u)
    m = st.trace["S"]
    return p, st, jnp.max(jnp.abs(p["S"].T @ p["S"] - jnp.eye(3))), jnp.max(jnp.abs(p["S"].T @ m)) / jnp.max(jnp.abs(m))

  for t in range(60):
    p, st, err, tangent = step(jnp.int32(t), st, p)
    err = float(err)
    assert err < 1e-6, (t, err)
    assert float(tangent) < 1e-5   # momentum stays tangent


def test_rayleigh_quotient_converges_to_top_eigenspace():
  """min -tr(S^T A S) on Gr(8, 2): the optimum is the span of A's top-2 eigenvectors (numpy.linalg.eigh)."""
  rng = np.random.default_rng(2)
  q = _np_qf(rng.normal(size=(8, 8)))
  a = q @ np.diag(np.arange(8.0, 0.0, -1.0)) @ q.T
  aj = jnp.asarray(a, jnp.float32)
  p = {"S": qr_retraction(jnp.asarray(rng.normal(size=(8, 2)), jnp.float32))}
  tx = riemannian_sgd_grassmann(0.05, 0.9)
  loss = lambda p: -jnp.trace(p["S"].T @ aj @ p["S"])

  @jax.jit
  def run(p):
    def body(c, _):
      p, st = c
      u, st = tx.update(jax.grad(loss)(p), st, p)
      return (optax.apply_updates(p, u), st), None
    return jax.lax.scan(body, (p, tx.init(p)), None, length=300)[0][0]

  s = np.asarray(run(p)["S"], np.float64)
  top = np.linalg.eigh(a)[1][:, -2:]
  np.testing.assert_allclose(s @ s.T, top @ top.T, atol=1e-4)           # same subspace (projectors equal)
  np.testing.assert_allclose(np.asarray(grassmann_tangent(jnp.asarray(s), jnp.asarray(s))), 0, atol=1e-6)


def test_bad_inputs_are_named():
  with pytest.raises(ValueError, match="momentum"):
    riemannian_sgd_grassmann(0.1, 1.0)
  with pytest.raises(ValueError, match=r"leaf \['v'\].*not a Grassmann point"):
    riemannian_sgd_grassmann(0.1).init({"v": jnp.ones((2, 5))})
  with pytest.raises(ValueError, match="k must be"):
    GrassmannClassifier(4, 3, 5, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"x must be \[..., d\]"):
    GrassmannClassifier(4, 3, 2, rngs=nnx.Rngs(0))(jnp.ones((2, 5)))
  with pytest.raises(ValueError, match="scale"):
    grassmann_logits(jnp.ones((2, 4)), jnp.ones((3, 4, 1)), scale=0.0)


def test_classifier_init_is_orthonormal():
  head = GrassmannClassifier(6, 4, 2, rngs=nnx.Rngs(0))
  s = np.asarray(head.S[...])
  np.testing.assert_allclose(np.einsum("cdk,cdl->ckl", s, s), np.broadcast_to(np.eye(2), (4, 2, 2)), atol=1e-6)


@pytest.mark.slow
def test_classifier_nnx_contract(tmp_path):
  """nnx.jit, split/merge train step, bf16 params, orbax (compile-heavy: under -m slow)."""
  x = jax.random.normal(jax.random.PRNGKey(0), (8, 6))
  labels = jnp.arange(8) % 4
  ce = lambda m, x: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(m(x).astype(jnp.float32), labels))
  check_layer_contract(lambda pdt: GrassmannClassifier(6, 4, 2, param_dtype=pdt, rngs=nnx.Rngs(1)), x, tmp_path,
                       loss=ce)
