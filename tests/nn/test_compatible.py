"""[73] fixed d-simplex classifier and [61] orthogonal transformation layer, exact checks against independent
references: the simplex Gram matrix equals its closed form (K I - 1 1^T)/(K - 1) (cosines -1/(K-1)); the head is
left untouched by an optimizer step; `compat_criteria` equals a float64 double loop; B^T B = I after every Adam
step (expm and Cayley), B equals SciPy's expm / the NumPy Cayley formula, distances are preserved; nnx.jit,
split/merge, bf16 params, orbax round trip, and clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg
from flax import nnx

from jaxlib_methods.nn import (FixedSimplexClassifier, OrthogonalTransform, compat_criteria, dsimplex_weights,
                               orthogonal_from_skew, pad_features)


def test_dsimplex_exact_and_fixed_head():
  for k in (2, 3, 7, 100):
    w = np.asarray(dsimplex_weights(k, dtype=jnp.float64) if jax.config.jax_enable_x64 else dsimplex_weights(k),
                   np.float64)
    assert w.shape == (k, k - 1)
    # Closed form of a regular centred simplex with unit vertices: Gram = (K I - 1 1^T) / (K - 1).
    np.testing.assert_allclose(w @ w.T, (k * np.eye(k) - np.ones((k, k))) / (k - 1), atol=1e-6)
    np.testing.assert_allclose(w.sum(0), 0.0, atol=1e-5)
  with jax.enable_x64(True):
    w = np.asarray(dsimplex_weights(10, dtype=jnp.float64))
    cos = (w @ w.T)[~np.eye(10, dtype=bool)]
    np.testing.assert_allclose(cos, -1.0 / 9.0, rtol=0, atol=1e-15)  # exact in float64
  # The head: logits = x W^T, and an optimizer step on (features, head) leaves W exactly unchanged.
  head = FixedSimplexClassifier(5)
  x = jax.random.normal(jax.random.key(0), (8, 4))
  np.testing.assert_allclose(head(x), np.asarray(x) @ np.asarray(dsimplex_weights(5)).T, rtol=1e-6, atol=1e-6)

  class Net(nnx.Module):
    def __init__(self):
      self.body = nnx.Linear(3, 4, rngs=nnx.Rngs(0))
      self.head = FixedSimplexClassifier(5)

    def __call__(self, x):
      return self.head(self.body(x))

  net = Net()
  opt = nnx.Optimizer(net, optax.sgd(0.5), wrt=nnx.Param)
  w0 = np.asarray(net.head.weight[...])
  b0 = np.asarray(net.body.kernel[...])

  @nnx.jit
  def step(net, opt, x, y):
    loss, g = nnx.value_and_grad(lambda m: optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean())(net)
    opt.update(net, g)
    return loss

  xs, ys = jax.random.normal(jax.random.key(1), (16, 3)), jnp.arange(16) % 5
  l0 = step(net, opt, xs, ys)
  l1 = step(net, opt, xs, ys)
  assert float(l1) < float(l0)
  np.testing.assert_array_equal(net.head.weight[...], w0)
  assert not np.array_equal(net.body.kernel[...], b0)
  gdef, state = nnx.split(net)
  apply = nnx.jit(lambda m, x: m(x))   # one program for both calls (the same graph: one compile)
  np.testing.assert_array_equal(apply(nnx.merge(gdef, state), xs), apply(net, xs))
  # bf16 storage keeps the geometry to bf16 precision.
  hb = FixedSimplexClassifier(4, param_dtype=jnp.bfloat16)
  assert hb.weight[...].dtype == jnp.bfloat16
  assert hb(jnp.ones((2, 3), jnp.bfloat16)).dtype == jnp.bfloat16


def test_compat_criteria_matches_double_loop():
  rng = np.random.default_rng(0)
  n, d = 12, 3
  fo, fn, y = rng.normal(size=(n, d)), rng.normal(size=(n, d)), rng.integers(0, 3, n)
  acc = {"same_cross": [], "same_old": [], "diff_cross": [], "diff_old": [], "sf": [], "df": []}
  for i in range(n):
    for j in range(n):
      if i == j:
        continue
      c, o = np.linalg.norm(fn[i] - fo[j]), np.linalg.norm(fo[i] - fo[j])
      kind = "same" if y[i] == y[j] else "diff"
      acc[kind + "_cross"].append(c)
      acc[kind + "_old"].append(o)
      acc[kind[0] + "f"].append(c <= o if kind == "same" else c >= o)
  criteria = jax.jit(compat_criteria)   # both calls below: the same shapes and dtypes, one compile
  out = criteria(jnp.asarray(fo, jnp.float32), jnp.asarray(fn, jnp.float32), jnp.asarray(y))
  for k in ("same_cross", "same_old", "diff_cross", "diff_old"):
    np.testing.assert_allclose(out[k], np.mean(acc[k]), rtol=1e-5)
  np.testing.assert_allclose(out["same_pair_fraction"], np.mean(acc["sf"]), rtol=1e-6)
  np.testing.assert_allclose(out["diff_pair_fraction"], np.mean(acc["df"]), rtol=1e-6)
  assert bool(out["compatible"]) == (np.mean(acc["same_cross"]) <= np.mean(acc["same_old"])
                                     and np.mean(acc["diff_cross"]) >= np.mean(acc["diff_old"]))
  # The identical model is compatible with itself only up to the i = j exclusion: same_cross = same_old.
  same = criteria(jnp.asarray(fo), jnp.asarray(fo), jnp.asarray(y))
  np.testing.assert_allclose(same["same_cross"], same["same_old"], rtol=1e-6)


def test_orthogonal_transform_exact_after_every_step():
  with jax.enable_x64(True):
    a = jax.random.normal(jax.random.key(0), (6, 6), jnp.float64)
    s = np.asarray(a) - np.asarray(a).T
    qe, qc = jax.jit(lambda a: (orthogonal_from_skew(a), orthogonal_from_skew(a, method="cayley")))(a)
    np.testing.assert_allclose(qe, scipy.linalg.expm(s), atol=1e-12)
    np.testing.assert_allclose(qc, np.linalg.inv(np.eye(6) - s / 2) @ (np.eye(6) + s / 2), atol=1e-12)
    for q in map(np.asarray, (qe, qc)):
      np.testing.assert_allclose(q.T @ q, np.eye(6), atol=1e-12)
  layer = _train_and_check_orthogonal("cayley")
  x = jax.random.normal(jax.random.key(1), (32, 5))
  gdef, state = nnx.split(layer)
  apply = nnx.jit(lambda m, x: m(x))   # one program for both calls (the same graph: one compile)
  np.testing.assert_array_equal(apply(nnx.merge(gdef, state), x), apply(layer, x))
  np.testing.assert_array_equal(pad_features(jnp.ones((2, 3)), 5), np.c_[np.ones((2, 3)), np.zeros((2, 2))])


def _train_and_check_orthogonal(method):
  """Five Adam steps towards a target no rotation reaches; B^T B = I after every step, distances preserved."""
  layer = OrthogonalTransform(5, method=method, init_scale=0.3, rngs=nnx.Rngs(0))
  opt = nnx.Optimizer(layer, optax.adam(0.1), wrt=nnx.Param)
  x = jax.random.normal(jax.random.key(1), (32, 5))
  target = x[:, ::-1] * 2.0

  @nnx.jit
  def step(layer, opt):
    loss, g = nnx.value_and_grad(lambda m: jnp.mean((m(x) - target) ** 2))(layer)
    opt.update(layer, g)
    return loss, layer.matrix(), layer(x)

  b_prev = None
  for _ in range(5):
    _, b, _ = step(layer, opt)
    b = np.asarray(b, np.float64)
    np.testing.assert_allclose(b.T @ b, np.eye(5), atol=2e-6)
    assert b_prev is None or np.abs(b - b_prev).max() > 1e-3  # the steps do move B
    b_prev = b
  _, _, y = step(layer, opt)
  y = np.asarray(y, np.float64)
  xd = np.linalg.norm(np.asarray(x)[:, None] - np.asarray(x)[None], axis=-1)
  np.testing.assert_allclose(np.linalg.norm(y[:, None] - y[None], axis=-1), xd, atol=2e-5)
  return layer


@pytest.mark.slow
def test_orthogonal_transform_expm_training_batched_bf16_orbax(tmp_path):
  layer = _train_and_check_orthogonal("expm")
  with jax.enable_x64(True):
    a = jax.random.normal(jax.random.key(0), (6, 6), jnp.float64)
    s = np.asarray(a) - np.asarray(a).T
    np.testing.assert_allclose(orthogonal_from_skew(jnp.stack([a, 2 * a]))[1], scipy.linalg.expm(2 * s),
                               atol=1e-10)
  lb = OrthogonalTransform(4, init_scale=0.1, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
  assert lb(jnp.ones((2, 4), jnp.bfloat16)).dtype == jnp.bfloat16
  ocp = pytest.importorskip("orbax.checkpoint")
  ckptr = ocp.StandardCheckpointer()
  ckptr.save(tmp_path / "ck", nnx.state(layer))
  ckptr.wait_until_finished()
  fresh = OrthogonalTransform(5, rngs=nnx.Rngs(9))
  nnx.update(fresh, ckptr.restore(tmp_path / "ck", nnx.state(fresh)))
  x = jax.random.normal(jax.random.key(1), (32, 5))
  np.testing.assert_array_equal(fresh(x), layer(x))


def test_compatible_errors():
  with pytest.raises(ValueError, match="num_classes"):
    dsimplex_weights(1)
  with pytest.raises(ValueError, match=r"x must be \[\.\.\., 4\]"):
    FixedSimplexClassifier(5)(jnp.ones((2, 5)))
  with pytest.raises(ValueError, match="same shape"):
    compat_criteria(jnp.ones((4, 2)), jnp.ones((4, 3)), jnp.zeros(4, int))
  with pytest.raises(ValueError, match="labels"):
    compat_criteria(jnp.ones((4, 2)), jnp.ones((4, 2)), jnp.zeros(3, int))
  with pytest.raises(TypeError, match="labels"):
    compat_criteria(jnp.ones((4, 2)), jnp.ones((4, 2)), jnp.zeros(4))
  with pytest.raises(ValueError, match="square"):
    orthogonal_from_skew(jnp.ones((3, 4)))
  with pytest.raises(ValueError, match="method"):
    OrthogonalTransform(3, method="qr", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="dim"):
    OrthogonalTransform(0, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="dim"):
    pad_features(jnp.ones((2, 3)), 2)
