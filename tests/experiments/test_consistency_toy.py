"""The iCT toy experiment [2]: tiny config runs, the consistency function meets its boundary condition, SW2 is right."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import consistency_toy as exp
from jaxlib_methods.losses import consistency as cm
from jaxlib_methods.runner import Claim


def test_boundary_condition_and_sliced_w2():
  cfg = exp.Config()
  params = exp.init_mlp(jax.random.key(0), cfg)
  x = jax.random.normal(jax.random.key(1), (5, 2))
  out = exp.consistency_fn(params, x, jnp.full((5,), cm.SIGMA_MIN))
  np.testing.assert_allclose(np.asarray(out), np.asarray(x), atol=1e-6)  # f(x, sigma_min) = x
  rng = np.random.default_rng(0)
  a = rng.normal(size=(300, 2))
  dirs = np.array([[1.0, 0.0], [0.0, 1.0]])
  assert exp.sliced_w2(a, a, dirs) == 0.0
  assert exp.sliced_w2(a + np.array([3.0, 0.0]), a, dirs) == np.sqrt((9 + 0) / 2)  # shift 3 along one of 2 axes


@pytest.mark.slow
def test_tiny_run_and_claims(tmp_path):
  cfg = dataclasses.replace(exp.Config(), steps=40, log_every=20, hidden=16, batch_size=32, n_eval=200,
                            n_projections=16, s1=40, fixed_num_scales=41)
  res = exp.run(cfg, tmp_path)
  assert set(res["sw2"]) == set(exp.RUNS)
  assert all(np.isfinite(v) for v in res["sw2"].values())
  out = exp.claims(res)
  assert len(out) == 2 and all(isinstance(c, Claim) for c in out)
  assert (tmp_path / "figure.png").exists()
