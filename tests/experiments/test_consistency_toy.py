"""The iCT toy experiment [2]: tiny config runs, the consistency function meets its boundary condition, SW2 is right."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import consistency_toy as exp
from jaxlib_methods.losses import consistency as cm
from jaxlib_methods.runner import Claim


def test_boundary_condition_and_sliced_w2():
  cfg = exp.Config()
  # Init and forward in one jitted program (eager: a compile per op and shape).
  x = jax.random.normal(jax.random.key(1), (5, 2))
  out = jax.jit(lambda k, x: exp.consistency_fn(exp.init_mlp(k, cfg), x, jnp.full((5,), cm.SIGMA_MIN)))(
      jax.random.key(0), x)
  np.testing.assert_allclose(np.asarray(out), np.asarray(x), atol=1e-6)  # f(x, sigma_min) = x
  rng = np.random.default_rng(0)
  a = rng.normal(size=(300, 2))
  dirs = np.array([[1.0, 0.0], [0.0, 1.0]])
  assert exp.sliced_w2(a, a, dirs) == 0.0
  assert exp.sliced_w2(a + np.array([3.0, 0.0]), a, dirs) == np.sqrt((9 + 0) / 2)  # shift 3 along one of 2 axes


def test_curricula():
  cfg = exp.Config(steps=3000)
  # The original CT curriculum: N(0) = s0, N(K) = s1 + 1, non-decreasing.
  ns = [exp.num_scales("ct", k, cfg) for k in range(0, 3001, 250)]
  assert ns[0] == cfg.ct_s0 and ns[-1] == cfg.ct_s1 + 1 and ns == sorted(ns)
  # iCT's doubling curriculum: 11, 21, ... capped at 1281 (K' = 3000 // 8 = 375 steps per stage).
  assert [exp.num_scales("doubling", k, cfg) for k in (0, 374, 375, 2999)] == [11, 11, 21, 1281]
  assert exp.num_scales("fixed_large", 0, cfg) == 1281


def test_curriculum_changes_at_the_step_not_at_the_chunk():
  # Doubling with K = 40, s0 = 2, s1 = 8: K' = floor(40 / (log2 4 + 1)) = 13, so N goes 3 -> 5 at step 13, inside
  # the first chunk of 20 steps: its steps 0..12 sample 2 intervals, steps 13..19 sample 4 (nonzero probabilities).
  cfg = exp.Config(steps=40, log_every=20, s0=2, s1=8)
  # Stand-in grids tagged by N (the real ones are `grid(N)`, tested in tests/losses/test_consistency.py).
  cache = {n: (np.full(10, float(n)), np.r_[np.ones(n - 1), np.zeros(10 - n)]) for n in (3, 5)}
  sig, probs = exp.step_grids("doubling", 0, cfg, 10, cache)
  assert sig.shape == (20, 10) and probs.shape == (20, 9)
  assert np.asarray(sig)[:, 0].tolist() == [3.0] * 13 + [5.0] * 7
  assert np.count_nonzero(np.asarray(probs), axis=1).tolist() == [2] * 13 + [4] * 7
  # The NumPy grid used per step equals the library's (karras_sigmas, lognormal_sigma_probs) to float32 rounding.
  sig_np, p_np = exp.np_grid(4, 6)
  sig_j, p_j = exp.grid(4, 6)
  np.testing.assert_allclose(sig_np, np.asarray(sig_j), rtol=1e-5)
  np.testing.assert_allclose(p_np, np.asarray(p_j), rtol=1e-5, atol=1e-7)


def test_claims_need_the_interval_below_zero():
  from experiments import _seed_stats as st
  res = {"diff": {"ict-squared_l2": st.paired_ci([0.1, 0.1, 0.1], [0.2, 0.21, 0.19]),
                  "ict-ema_teacher": st.paired_ci([0.1, 0.1, 0.1], [0.1, 0.1, 0.1]),
                  "ict-fixed_large": st.paired_ci([0.1, 0.1, 0.1], [0.08, 0.07, 0.09])}}
  out = exp.claims(res)
  assert [(c.kind, c.passed) for c in out] == [("paper", True), ("paper", False), ("sanity", True)]


def test_too_few_steps_is_refused():
  from jaxlib_methods.runner import experiment as exp_lib
  with pytest.raises(exp_lib.UsageError, match="steps % log_every"):
    exp_lib.get("consistency_toy").config("cpu", ("steps=100",))


@pytest.mark.slow
def test_tiny_run_and_claims(tmp_path):
  from jaxlib_methods.runner import experiment as exp_lib
  e = exp_lib.get("consistency_toy")
  res = e.run(e.config("cpu", exp.TINY + ("runs=ict,squared_l2,ema_teacher",)), tmp_path)
  assert set(res["sw2"]) == {"ict", "squared_l2", "ema_teacher"}
  assert all(np.isfinite(v).all() for v in res["sw2"].values())
  out = e.claims(res)
  assert len(out) == 2 and all(isinstance(c, Claim) for c in out)
  assert (tmp_path / "figure.png").exists()
