"""The latent-consistency experiment [3]: the data's impulsive outliers, the adaptive c, the model's norms."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments import latent_consistency as exp
from jaxlib_methods.losses import consistency as cm
from jaxlib_methods.nn import NonScalingLayerNorm
from jaxlib_methods.runner import experiment as exp_lib


def test_outliers_are_rare_and_impulsive():
  cfg = exp_lib.get("latent_consistency").config("cpu")
  x = np.asarray(exp.sample_latent(jax.random.key(0), 20000, cfg))
  clean = np.asarray(exp.sample_clean(jax.random.key(0), 20000, cfg))
  far = np.linalg.norm(x, axis=1) > 2.0
  assert 0.02 < far.mean() < cfg.outlier_prob + 0.01      # a few percent, far out
  assert np.max(np.linalg.norm(clean, axis=1)) < 1.6        # the clean mixture stays on its circle


def test_adaptive_c_starts_at_the_ict_c_and_decays_with_the_authors_exponent():
  cfg = exp_lib.get("latent_consistency").config("cpu")
  c11, c21, c1281 = (exp.adaptive_c(n, cfg) for n in (11, 21, 1281))
  assert c11 == cm.default_pseudo_huber_c(2)
  np.testing.assert_allclose(c21 / c11, 2.0 ** -cm.LCT_C_SLOPE, rtol=1e-9)
  np.testing.assert_allclose(c1281 / c21, (1280 / 20) ** -cm.LCT_C_SLOPE, rtol=1e-9)


def test_model_uses_the_requested_norm():
  m = nnx.jit(lambda: exp.ConsistencyMLP(8, True, rngs=nnx.Rngs(0)))()   # one compiled init, not op by op
  assert all(isinstance(n, NonScalingLayerNorm) for n in m.norms)
  assert "scale" not in jax.tree_util.keystr(jax.tree_util.tree_flatten_with_path(nnx.state(m))[0])
  m2 = nnx.eval_shape(lambda: exp.ConsistencyMLP(8, False, rngs=nnx.Rngs(0)))   # only its structure is checked
  assert not any(isinstance(n, NonScalingLayerNorm) for n in m2.norms)
  apply = jax.jit(exp.make_apply(nnx.graphdef(m)))
  x = jnp.ones((3, 2))
  np.testing.assert_allclose(apply(nnx.state(m), x, jnp.full((3,), cm.SIGMA_MIN)), x, atol=1e-6)  # f(x, s_min) = x
