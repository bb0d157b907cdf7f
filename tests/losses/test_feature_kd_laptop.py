"""LAPTOP-Diff [94]: normalised feature KD and the output-loss pruning criterion against float64 NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import losses


def test_normalized_feature_kd_values_gradients_and_scale_invariance_float64():
  rng = np.random.default_rng(0)
  s = [rng.normal(size=(5, 3, 4)), rng.normal(size=(5, 7)) * 100]     # two layers of very different scale
  t = [rng.normal(size=(5, 3, 4)), rng.normal(size=(5, 7)) * 100]
  ref = np.stack([((a - b) ** 2).reshape(5, -1).sum(-1) / (b ** 2).reshape(5, -1).sum(-1) for a, b in zip(s, t)], -1)
  with jax.enable_x64(True):
    kd = jax.jit(losses.normalized_feature_kd, static_argnames=("sum_layers",))
    np.testing.assert_allclose(np.asarray(kd(s, t, sum_layers=False)), ref, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(kd(s, t)), ref.sum(-1), rtol=1e-12)
    g_s, g_t = jax.grad(lambda a, b: kd(a, b).sum(), argnums=(0, 1))(s, t)
    for gl, a, b in zip(g_s, s, t):   # d/ds ||s - t||^2 / ||t||^2 = 2 (s - t) / ||t||^2 (teacher constant)
      norm2 = (b ** 2).reshape(5, -1).sum(-1).reshape((5,) + (1,) * (a.ndim - 1))
      np.testing.assert_allclose(np.asarray(gl), 2 * (a - b) / norm2, rtol=1e-10)
    assert all(np.all(np.asarray(gl) == 0) for gl in g_t)
    # the point of the normalisation: scaling a layer (student and teacher) leaves its term unchanged; s = 0 gives 1
    np.testing.assert_allclose(np.asarray(kd([s[0] * 1e3, s[1]], [t[0] * 1e3, t[1]], sum_layers=False)), ref,
                               rtol=1e-10)
    np.testing.assert_allclose(np.asarray(kd([0 * s[0], 0 * s[1]], t, sum_layers=False)), np.ones((5, 2)), rtol=1e-12)


@pytest.mark.slow  # where / half precision / traced-label probes: compiles many small programs
def test_normalized_feature_kd_where_half_precision_and_bad_input():
  s, t = [jnp.ones((3, 4)), jnp.full((3, 2), jnp.nan)], [2 * jnp.ones((3, 4)), jnp.ones((3, 2))]
  where = jnp.array([True, False, True])
  t[1] = t[1].at[0].set(1.0)
  s2 = [s[0], s[1].at[0].set(0.0).at[2].set(0.0)]
  out, g = jax.value_and_grad(lambda a: losses.normalized_feature_kd(a, t, where=where).sum())(s2)
  np.testing.assert_allclose(float(out), 2 * (0.25 + 1.0), rtol=1e-6)
  assert np.all(np.isfinite(np.asarray(g[1]))) and np.all(np.asarray(g[1][1]) == 0)
  assert np.isnan(float(losses.normalized_feature_kd(s2, t)[1]))
  half = losses.normalized_feature_kd([a.astype(jnp.bfloat16) for a in s2], t)
  assert half.dtype == jnp.float32 and abs(float(half[0]) - 1.25) < 1e-2
  with pytest.raises(ValueError, match="same number"):
    losses.normalized_feature_kd(s, t[:1])
  with pytest.raises(ValueError, match=r"teacher_feats\[1\]"):
    losses.normalized_feature_kd(s, [t[0], jnp.ones((3, 3))])
  with pytest.raises(TypeError, match="sequences"):
    losses.normalized_feature_kd(s[0], t[0])
  with pytest.raises(TypeError, match=r"student_feats\[0\]"):
    losses.normalized_feature_kd([jnp.ones((3, 4), jnp.int32)], [t[0]])


def test_output_loss_criterion_matches_numpy_loop():
  rng = np.random.default_rng(2)
  m, dim = 5, 6
  ws = rng.normal(size=(m, dim, dim)) * np.linspace(0.05, 0.5, m)[:, None, None]
  x = rng.normal(size=(8, dim))

  def np_forward(keep):
    h = x
    for i in range(m):
      h = h + keep[i] * np.tanh(h @ ws[i])
    return h

  with jax.enable_x64(True):
    wj, xj = jnp.asarray(ws), jnp.asarray(x)

    def forward(keep):
      h = xj
      for i in range(m):
        h = h + keep[i] * jnp.tanh(h @ wj[i])
      return h

    scores = np.asarray(jax.jit(lambda: losses.output_loss_criterion(forward, m))())
  full = np_forward(np.ones(m))
  ref = [((np_forward(1 - np.eye(m)[i]) - full) ** 2).sum(-1).mean() for i in range(m)]
  np.testing.assert_allclose(scores, ref, rtol=1e-10)
  assert np.argsort(scores)[0] == 0   # the smallest residual branch is the cheapest to remove
  with pytest.raises(ValueError, match="num_blocks"):
    losses.output_loss_criterion(forward, 0)


def test_normalized_feature_kd_sum_layers_must_be_bool():
  """[94] sum_layers='no' was truthy and silently summed the layers."""
  s, t = [jnp.ones((2, 3))], [2 * jnp.ones((2, 3))]
  for bad in ("no", 0, None):
    with pytest.raises(TypeError, match="sum_layers must be a bool"):
      losses.normalized_feature_kd(s, t, sum_layers=bad)
  assert losses.normalized_feature_kd(s, t, sum_layers=np.bool_(False)).shape == (2, 1)
