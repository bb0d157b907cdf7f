"""The NPO unlearning experiment [182]: the data, the divergence-form fits against closed forms, and (slow) a run."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import npo_unlearning as exp
from jaxlib_methods.runner import experiment as exp_lib


def test_forget_set_is_its_own_cluster_with_its_own_rule():
  cfg = exp.Config(n_train=400)
  x, y, xt, yt, forget, w = exp.make_data(cfg)
  assert forget.sum() == 40 and w.shape == (cfg.dim, cfg.n_features)
  centre = x[forget].mean(0)
  assert np.linalg.norm(centre) > 0.7 * cfg.forget_offset
  assert len(np.unique(y[forget])) > 1  # several labels, separable by their own linear rule


def test_fit_recovers_the_log_slope_and_rejects_a_line():
  beta = 0.5
  t = np.arange(0, 4001, 40, dtype=float)
  # The closed form of NPO's divergence: l(t) = l_ref - (1/beta) log(1 + 2 beta c t).
  ell = -0.01 - np.log1p(2 * beta * 0.3 * t) / beta
  fit = exp.fit_log_form(t, ell, beta)
  assert abs(fit["b"] * beta - 1.0) < 0.02 and fit["rmse"] < 0.1 * fit["linear_rmse"] and fit["span"] > 2
  line = -0.01 - 3.0 * t  # GA: linear divergence
  fit = exp.fit_log_form(t, line, beta)
  assert fit["b"] * beta > 100 and fit["rmse"] > fit["linear_rmse"]
  assert exp.linear_r2(t, line) == pytest.approx(1.0)
  assert np.isnan(exp.fit_log_form(t, np.zeros_like(t), beta)["b"])  # never leaves the first phase


def test_vmapped_seeds_with_a_stop_mask_equal_a_loop_that_breaks_per_seed():
  # A step size at which GA's logits overflow float32 within a few chunks, at a different chunk per seed, so some seeds
  # go on after others have stopped (checked below). The reference is today's per-seed loop: jitted
  # chunks of one seed, stopping at the first non-finite mean forget log-likelihood.
  cfg = exp.Config(seeds=3, n_train=200, n_test=200, n_features=64, unlearn_steps=40, log_every=5, unlearn_lr=1e34)
  data = [exp.make_data(cfg, r) for r in range(cfg.seeds)]
  xt, yt, w = (jnp.asarray(np.stack([d[i] for d in data])) for i in (2, 3, 5))
  xf, yf = (jnp.asarray(np.stack([d[i][d[4]] for d in data])) for i in (0, 1))
  xr, yr = (jnp.asarray(np.stack([d[i][~d[4]] for d in data])) for i in (0, 1))
  a_ref = 0.1 * jax.random.normal(jax.random.key(0), (cfg.seeds, cfg.n_features, cfg.num_classes))   # no pretraining
  rows = exp.unlearn("ga", a_ref, w, cfg, xf, yf, xr, yr, xt, yt)
  chunk = jax.jit(functools.partial(exp.chunk_one, cfg, "ga"))
  log_lik = jax.jit(exp.log_lik)
  # Per-seed slices taken on the host (exact copies; eager device indexing compiles a program per array shape).
  xf_, yf_, xr_, yr_, xt_, yt_, a_ref_, w_ = map(np.asarray, (xf, yf, xr, yr, xt, yt, a_ref, w))
  for s in range(cfg.seeds):
    args = (xf_[s], yf_[s], xr_[s], yr_[s], xt_[s], yt_[s])
    lref = log_lik(a_ref_[s], w_[s], xf_[s], yf_[s])
    loop, a = [], a_ref_[s]
    for i in range(cfg.unlearn_steps // cfg.log_every):
      a, logged = chunk(a, lref, w_[s], *args)
      if not np.isfinite(float(logged[0])):
        break
      loop.append(((i + 1) * cfg.log_every, *map(float, logged)))
    assert len(rows[s]) - 1 == len(loop), (s, len(rows[s]), len(loop))   # row 0 is the start
    np.testing.assert_allclose(np.array(rows[s][1:]), np.array(loop), rtol=1e-5)
  lengths = [len(r) for r in rows]
  assert min(lengths) < max(lengths) < cfg.unlearn_steps // cfg.log_every + 1, lengths   # the masks differ


def test_claims_logic():
  base = {"ga_collapsed_all": True, "min_slowdown": 12.0, "npo_collapsed_any": False, "min_ga_linear_r2": 0.999,
          "npo_b_times_beta": [1.0, 0.9, 1.1], "npo_log_vs_linear_rmse": [0.1, 0.2, 0.1], "npo_fit_spans": [5, 4, 3]}
  rows = exp.claims(base)
  assert all(r.kind == "paper" for r in rows) and all(r.passed for r in rows)
  rows = exp.claims(dict(base, npo_b_times_beta=[1.0, 2.5, 1.0]))
  assert not rows[3].passed and rows[3].ours == 2.5
  rows = exp.claims(dict(base, min_slowdown=1.0, npo_fit_spans=[5, 1.5, 3]))
  assert not rows[1].passed and not rows[3].passed


@pytest.mark.slow
def test_tiny_run_is_deterministic(tmp_path):
  e = exp_lib.get("npo_unlearning")
  cfg = e.config("cpu", exp.TINY)
  a = e.run(cfg, tmp_path / "a")
  b = e.run(cfg, tmp_path / "b")
  assert a["npo_b_times_beta"] == b["npo_b_times_beta"]
  json.dumps(a)
  assert (tmp_path / "a" / "figure.png").exists()
