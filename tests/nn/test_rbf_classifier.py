"""[191] RBFClassifier, certified_radius and rbf_margin_loss: a float64 NumPy transcription of the forward pass, and
the certificate checked against the exact distance to the decision boundary found by dense ray search in 2-D."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn.rbf_classifier import RBFClassifier, certified_radius, rbf_margin_loss
from tests.nn._layer_contract import check_layer_contract


def _numpy_probs(m, x):
  w = np.asarray(m.components[...], np.float64)
  d = np.linalg.norm(x[:, None, :] - w[None], axis=-1)
  det = np.exp(-d / m.sigma) if m.kernel == "exp" else np.exp(-0.5 * (d / m.sigma) ** 2)
  lg = np.asarray(m.reasoning_logits[...], np.float64)
  r = np.exp(lg - lg.max(-1, keepdims=True))
  r /= r.sum(-1, keepdims=True)
  K = w.shape[0]
  return det @ r[:, :K].T + (1 - det) @ r[:, K:].T


def _check_certificate(kernel, n_points, n_rays, step, n_steps):
  rng = np.random.default_rng(0)
  m = RBFClassifier(2, 6, 3, sigma=0.7, kernel=kernel, rngs=nnx.Rngs(2))
  m.reasoning_logits[...] = jnp.asarray(2.0 * rng.normal(size=(3, 12)), jnp.float32)   # sharper reasoning
  x = rng.normal(size=(n_points, 2)).astype(np.float32)
  p = np.asarray(jax.jit(lambda m, x: m(x))(m, x), np.float64)
  np.testing.assert_allclose(p, _numpy_probs(m, x.astype(np.float64)), rtol=1e-5, atol=1e-6)
  r = np.asarray(jax.jit(lambda m, x: certified_radius(m, x))(m, x), np.float64)
  # distance to a prediction change along n_rays rays, radii step `step` (float64 NumPy)
  ang = np.linspace(0, 2 * np.pi, n_rays, endpoint=False)
  dirs = np.stack([np.cos(ang), np.sin(ang)], -1)
  steps = np.arange(1, n_steps + 1) * step
  tight = []
  for xi, ri, pi in zip(x.astype(np.float64), r, p):
    pts = xi + steps[:, None, None] * dirs[None]                       # [S, A, 2]
    pred = _numpy_probs(m, pts.reshape(-1, 2)).argmax(-1).reshape(len(steps), len(ang))
    changed = (pred != pi.argmax()).any(1)                             # [S]: some ray changed at this radius
    first = steps[np.argmax(changed)] if changed.any() else np.inf
    assert ri <= first + step, (ri, first)                            # never beyond the boundary
    if np.isfinite(first):
      tight.append(ri / first)
  assert len(tight) >= n_points // 2 and np.median(tight) > 0.05, tight   # not vacuous
  return m, x, p, rng


def test_rbf_forward_certificate_is_a_true_lower_bound_and_margin_loss():
  m, x, p, rng = _check_certificate("exp", 6, 90, 1e-2, 300)
  # wrong label -> radius 0
  y_wrong = (p.argmax(-1) + 1) % 3
  assert np.all(np.asarray(jax.jit(lambda m, x, y: certified_radius(m, x, y))(m, x, jnp.asarray(y_wrong))) == 0)
  # margin loss = NumPy hinge on the probability gap
  y = rng.integers(0, 3, 6)
  other = np.where(np.eye(3, dtype=bool)[y], -np.inf, p).max(-1)
  want = np.maximum(0, 0.25 - (p[np.arange(6), y] - other))
  np.testing.assert_allclose(np.asarray(rbf_margin_loss(jnp.asarray(p, jnp.float32), jnp.asarray(y), margin=0.25)),
                             want, atol=1e-6)
  # the margin loss's gradient flows to the components (no stop-gradient anywhere)
  g = nnx.jit(nnx.grad(lambda m: rbf_margin_loss(m(x), jnp.asarray(y), margin=0.5).sum()))(m)
  assert float(jnp.abs(g.components[...]).sum()) > 0


def test_rbf_bad_input():
  with pytest.raises(ValueError, match="kernel"):
    RBFClassifier(2, 3, 2, kernel="cauchy", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="num_classes"):
    RBFClassifier(2, 3, 1, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="sigma"):
    RBFClassifier(2, 3, 2, sigma=0.0, rngs=nnx.Rngs(0))
  m = RBFClassifier(2, 3, 2, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="x must be"):
    m(jnp.zeros((4, 3)))
  with pytest.raises(ValueError, match="y must be"):
    certified_radius(m, jnp.zeros((4, 2)), jnp.zeros((3,), jnp.int32))
  with pytest.raises(ValueError, match="iters"):
    certified_radius(m, jnp.zeros((4, 2)), iters=0)
  with pytest.raises(ValueError, match="margin"):
    rbf_margin_loss(jnp.zeros((4, 2)), jnp.zeros((4,), jnp.int32), margin=-1.0)


@pytest.mark.slow  # the finer ray search, both kernels: ~10 s of NumPy
def test_rbf_certificate_fine_search():
  for kernel in ("exp", "gaussian"):
    _check_certificate(kernel, 8, 180, 5e-3, 400)


@pytest.mark.slow  # nnx.jit, split/merge train step, bf16, orbax: a few s of compiles
def test_rbf_layer_contract(tmp_path):
  x = jax.random.normal(jax.random.key(0), (16, 2))
  y = jnp.arange(16) % 3
  check_layer_contract(lambda dt: RBFClassifier(2, 4, 3, rngs=nnx.Rngs(0), param_dtype=dt), x, tmp_path,
                       loss=lambda m, x: jnp.mean(rbf_margin_loss(m(x).astype(jnp.float32), y, margin=0.5)))
