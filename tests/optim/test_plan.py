"""The `reshape` option of GaLore / Q-GaLore / FRUGAL (leaves of rank >= 3), checked against the 2-D path on the
reshaped tensor: a transform given [d, n, h] with reshape=1 must do exactly what it does on the [d, n*h] matrix, and
reshape="slices" on [L, m, n] exactly what it does on L separate matrices."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods import optim as O


def _grads(p, t):
  return jax.tree.map(lambda x: jnp.sin(x * (1.0 + 0.3 * t)) + 0.1, p)


def _train(tx, params, steps):
  state = tx.init(params)
  step = jax.jit(tx.update)
  for t in range(steps):
    u, state = step(_grads(params, t), state, params)
    params = optax.apply_updates(params, u)
  return params, state


MAKERS = {
    "galore": lambda **kw: O.galore(0.1, rank=3, update_gap=2, **kw),
    "q_galore": lambda **kw: O.q_galore(0.1, rank=3, update_gap=2, group_size=6, **kw),
    "frugal_svd": lambda **kw: O.frugal(0.1, rho=0.5, update_gap=2, projector="svd", **kw),
    "frugal_columns": lambda **kw: O.frugal(0.1, rho=0.5, update_gap=2, projector="columns", **kw),
}


@pytest.mark.parametrize("name", [n if n == "galore" else pytest.param(n, marks=pytest.mark.slow) for n in MAKERS])
def test_reshaped_leaves_equal_the_2d_path_on_the_reshaped_tensors(name):
  rng = np.random.default_rng(0)
  q = jnp.asarray(rng.normal(size=(6, 2, 3)), jnp.float32)        # [d, n, h] -> rows d: [6, 6]
  o = jnp.asarray(rng.normal(size=(2, 3, 8)), jnp.float32)        # [n, h, d] -> rows n*h: [6, 8]
  conv = jnp.asarray(rng.normal(size=(2, 2, 3, 4)), jnp.float32)  # [kh, kw, cin, cout] -> [12, 4]
  params3 = {"conv": conv, "o": o, "q": q}
  params2 = {"conv": conv.reshape(12, 4), "o": o.reshape(6, 8), "q": q.reshape(6, 6)}
  p3, s3 = _train(MAKERS[name](reshape={"conv": "flatten", "o": 2, "q": 1}), params3, 5)
  p2, s2 = _train(MAKERS[name](), params2, 5)
  for k in params3:
    np.testing.assert_array_equal(np.asarray(p3[k]).reshape(params2[k].shape), np.asarray(p2[k]), err_msg=k)
  # The state is the 2-D path's state (the projected leaves' inner state lives on the matrix shapes).
  assert [x.shape for x in jax.tree.leaves(s3)] == [x.shape for x in jax.tree.leaves(s2)]


# On an H200 (2026-12-04) q_galore's stacked and separate runs differed by up to 0.11: cusolver's batched and
# single-matrix SVDs may return singular vectors of opposite signs, and Q-GaLore, like the official code, is not
# sign-invariant (asymmetric INT4 projection, signed cosine of the top vector in its lazy schedule).
_GPU_SVD_SIGNS = pytest.mark.xfail(jax.default_backend() == "gpu", strict=False,
                                   reason="batched vs single SVD signs on GPU; Q-GaLore is sign-sensitive")


@pytest.mark.parametrize("name", [pytest.param("galore", marks=pytest.mark.slow),
                                  pytest.param("q_galore", marks=_GPU_SVD_SIGNS)])
def test_slices_equal_separate_matrices(name):
  rng = np.random.default_rng(1)
  stacked = jnp.asarray(rng.normal(size=(3, 6, 4)), jnp.float32)
  p3, s3 = _train(MAKERS[name](reshape="slices"), {"w": stacked}, 6)
  p2, s2 = _train(MAKERS[name](), {f"w{i}": stacked[i] for i in range(3)}, 6)
  for i in range(3):
    np.testing.assert_allclose(np.asarray(p3["w"][i]), np.asarray(p2[f"w{i}"]), rtol=1e-5, atol=1e-6)
  if name == "q_galore":  # each slice has its own lazy schedule
    for i in range(3):
      assert int(s3[0].gap["w"][i]) == int(s2[0].gap[f"w{i}"])
      assert int(s3[0].svd_count["w"][i]) == int(s2[0].svd_count[f"w{i}"])
  else:
    assert s3[0].basis["w"].shape == (3, 4, 3)  # L bases, right side (6 >= 4)


def test_reshape_errors_name_the_leaf():
  with pytest.raises(ValueError, match=r"reshape='slices' needs a stacked \[L, m, n\] leaf, but leaf \['k'\]"):
    O.galore(0.1, rank=2, reshape="slices").init({"k": jnp.ones((2, 3, 4, 5))})
  with pytest.raises(ValueError, match=r"reshape=3 row axes is out of range for leaf \['k'\]"):
    O.galore(0.1, rank=2, reshape={"k": 3}).init({"k": jnp.ones((2, 3, 4))})
  with pytest.raises(ValueError, match="unknown reshape='rows'"):
    O.galore(0.1, rank=2, reshape="rows").init({"k": jnp.ones((2, 3, 4))})
  with pytest.raises(ValueError, match=r"projects 2-D leaves, but leaf \['k'\] has shape \(2, 3, 4\); pass reshape="):
    O.galore(0.1, rank=2, projection_mask={"k": True}).init({"k": jnp.ones((2, 3, 4))})
  with pytest.raises(ValueError, match="must be a pytree matching the params"):
    O.galore(0.1, rank=2, projection_mask={"other": True}).init({"k": jnp.ones((2, 3))})
  with pytest.raises(O.StaticArgumentError, match="single bool"):
    O.galore(0.1, rank=2, projection_mask=False).init({"k": jnp.ones((2, 3)), "b": jnp.ones(3)})
