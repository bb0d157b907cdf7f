"""⊥Grad vs a float64 NumPy transcription of the official PyTorch OrthoGrad wrapper (official-code-facts 5.3)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods import optim as og


def _np_orthograd(g, w, renormalize=True):
  g = np.asarray(g, np.float64).reshape(-1)
  w = np.asarray(w, np.float64).reshape(-1)
  gp = g - (w @ g) / (w @ w + 1e-30) * w
  if renormalize:
    gp = gp * (np.linalg.norm(g) / (np.linalg.norm(gp) + 1e-30))
  return gp


@pytest.mark.parametrize("renormalize", [True, False])
def test_matches_numpy_per_tensor(renormalize):
  rng = np.random.default_rng(0)
  params = {"a": rng.normal(size=(5, 3)).astype(np.float32), "b": rng.normal(size=(4,)).astype(np.float32)}
  grads = {"a": rng.normal(size=(5, 3)).astype(np.float32), "b": rng.normal(size=(4,)).astype(np.float32)}
  tx = og.scale_by_orthograd(renormalize=renormalize)
  out, state = jax.jit(tx.update)(grads, tx.init(params), params)
  assert int(state.count) == 1
  for k in params:
    ref = _np_orthograd(grads[k], params[k], renormalize)
    np.testing.assert_allclose(np.asarray(out[k]).reshape(-1), ref, rtol=1e-5, atol=1e-6)
    # Orthogonal to the tensor's weights (per tensor, not over the model vector).
    assert abs(float(np.asarray(out[k]).reshape(-1) @ params[k].reshape(-1))) < 1e-4
    if renormalize:
      assert np.linalg.norm(np.asarray(out[k])) == pytest.approx(np.linalg.norm(grads[k]), rel=1e-5)
    assert out[k].dtype == grads[k].dtype


def test_gradient_along_weights_is_removed_entirely():
  w = {"w": jnp.array([1.0, 2.0, -1.0])}
  g = {"w": 3.0 * w["w"]}
  out, _ = og.scale_by_orthograd(renormalize=False).update(g, og.scale_by_orthograd().init(w), w)
  np.testing.assert_allclose(np.asarray(out["w"]), 0.0, atol=1e-6)


def test_orthogonal_adamw_equals_adamw_on_projected_gradients():
  rng = np.random.default_rng(1)
  params = {"w": jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)}
  tx = og.orthogonal_adamw(1e-2, b2=0.99)
  ref = optax.adamw(1e-2, b1=0.9, b2=0.99, eps=1e-8, weight_decay=0.0)
  s, r = tx.init(params), ref.init(params)
  p1 = p2 = params
  for t in range(3):
    g = {"w": jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)}
    u1, s = tx.update(g, s, p1)
    gproj = {"w": jnp.asarray(_np_orthograd(g["w"], p2["w"]).reshape(6, 4), jnp.float32)}
    u2, r = ref.update(gproj, r, p2)
    p1, p2 = optax.apply_updates(p1, u1), optax.apply_updates(p2, u2)
  np.testing.assert_allclose(np.asarray(p1["w"]), np.asarray(p2["w"]), rtol=1e-5, atol=1e-6)


def test_wrapper_composes_with_masked_and_chain():
  params = {"w": jnp.ones((3,)), "b": jnp.ones((2,))}
  tx = optax.masked(og.orthograd(optax.sgd(0.1)), {"w": True, "b": False})
  g = {"w": jnp.array([1.0, 0.0, 0.0]), "b": jnp.array([1.0, 1.0])}
  u, _ = tx.update(g, tx.init(params), params)
  assert abs(float(jnp.sum(u["w"] * params["w"]))) < 1e-6
  np.testing.assert_allclose(np.asarray(u["b"]), [1.0, 1.0])  # untouched by the mask


def test_errors():
  tx = og.scale_by_orthograd()
  with pytest.raises(ValueError, match="needs the parameters"):
    tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.ones(2)}))
  with pytest.raises(ValueError, match="learning_rate"):
    og.orthogonal_adamw(-1.0)
  with pytest.raises(ValueError, match="b2"):
    og.orthogonal_adamw(1e-3, b2=1.0)
  with pytest.raises(ValueError, match="shapes differ"):
    tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.ones(3)}), {"w": jnp.ones(3)})


def test_complex_and_3d_leaves_match_numpy_and_integers_are_rejected():
  rng = np.random.default_rng(5)
  w = rng.normal(size=(2, 3, 4)) + 1j * rng.normal(size=(2, 3, 4))
  g = rng.normal(size=(2, 3, 4)) + 1j * rng.normal(size=(2, 3, 4))
  tx = og.scale_by_orthograd(renormalize=True)
  params = {"w": jnp.asarray(w, jnp.complex64)}
  out, _ = tx.update({"w": jnp.asarray(g, jnp.complex64)}, tx.init(params), params)
  wf, gf = w.reshape(-1), g.reshape(-1)
  gp = gf - (np.vdot(wf, gf) / np.vdot(wf, wf).real) * wf  # the complex inner product <w, g> = sum conj(w) g
  gp *= np.linalg.norm(gf) / np.linalg.norm(gp)
  np.testing.assert_allclose(np.asarray(out["w"]).reshape(-1), gp, rtol=1e-5, atol=1e-6)
  assert abs(np.vdot(wf, np.asarray(out["w"]).reshape(-1))) < 1e-4 * np.linalg.norm(wf) * np.linalg.norm(gf)
  with pytest.raises(TypeError, match=r"leaf \['n'\] of the params has dtype int32"):
    og.orthogonal_adamw(1e-3).init({"n": jnp.ones(3, jnp.int32)})
