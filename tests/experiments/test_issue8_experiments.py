"""Issue-8 experiments at tiny sizes: run, write a figure and metrics, and return a well-formed claims list."""

import json
import math

import pytest

from jaxlib_methods.runner import Claim


def _check(module, config, tmp_path, n_claims):
  results = module.run(config, tmp_path)
  json.dumps(results, default=str)  # JSON-serialisable (inf/nan allowed as floats)
  assert (tmp_path / "figure.png").stat().st_size > 1000
  assert (tmp_path / "metrics.jsonl").exists()
  cl = module.claims(results)
  assert len(cl) == n_claims and all(isinstance(c, Claim) for c in cl)
  return results


def test_grokking_numerical_stability_tiny(tmp_path):
  from experiments import grokking_numerical_stability as m
  cfg = m.Config(p=11, width=16, steps_softmax=20, steps_stablemax=10, steps_orthograd=10, log_every=10,
                 checkpoint_every=20)
  r = _check(m, cfg, tmp_path, 5)
  assert r["budgets"]["orthograd"] == 10
  # A run stops at its budget: its metrics rows beyond it are frozen copies.
  rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert rows[-1]["orthograd/train_loss"] == rows[-2]["orthograd/train_loss"]
  assert rows[-1]["softmax_fp32/train_loss"] != rows[-2]["softmax_fp32/train_loss"]
  with pytest.raises(ValueError, match="budget"):
    m.run(m.Config(p=11, width=8, steps_softmax=-1), tmp_path / "bad")


@pytest.mark.slow  # ~40 s: three model variants compile
def test_small_scale_proxies_tiny(tmp_path):
  from experiments import small_scale_proxies as m
  cfg = m.Config(vocab_size=8, d_model=16, num_layers=1, num_heads=2, batch_size=2, seq_len=8, num_steps=6,
                 num_lrs=3, log_every=3, num_seeds=2)
  r = _check(m, cfg, tmp_path, 4)
  assert len(r["baseline"]["final_loss"]) == 2 and len(r["baseline"]["final_loss"][0]) == 3   # [seed][lr]
  # LR sensitivity closed form: losses (1, 2, inf) with loss_0 = 3 -> mean(0, 1, 2) = 1.
  assert m.lr_sensitivity([1.0, 2.0, math.inf], 3.0) == pytest.approx(1.0)


@pytest.mark.slow  # ~20 s: eight (parametrisation, width) compilations
def test_lr_transfer_sharpness_tiny(tmp_path):
  from experiments import lr_transfer_sharpness as m
  cfg = m.Config(widths=(8, 16), n_train=16, num_steps=10, sharpness_every=5, power_iters=3, num_lrs=3)
  r = _check(m, cfg, tmp_path, 5)
  assert len(r["mup"]["8"]["sharpness"]) == 3


def test_dae_score_tiny(tmp_path):
  from experiments import dae_score as m
  r = _check(m, m.Config(sigmas=(0.8, 0.4), num_steps=5, batch_size=64, hidden=8), tmp_path, 6)
  # The exact (Tweedie) DAE error falls like sigma^2: independent of training.
  assert 1.6 <= r["exact_error_slope"] <= 2.4


@pytest.mark.slow  # ~30 s on 2 cores (its per-noise scoring runs eagerly); the mutation test covers it under -m slow
def test_temperature_scaling_overlap_tiny(tmp_path):
  from experiments import temperature_scaling_overlap as m
  r = _check(m, m.Config(seeds=2, noises=(0.0, 0.5), n_train=32, n_val=64, n_test=64, hidden=8, num_steps=5),
             tmp_path, 4)
  assert len(r["erm"]["ece_ts"]) == 2 and len(r["erm"]["ece_ts"][0]) == 2 and len(r["erm"]["mean"]["ece_ts"]) == 2
  assert r["mixup_minus_erm_ts"]["n"] == 2


def test_temperature_scaling_mixup_with_tiny_alpha_keeps_one_hot_labels():
  import jax
  import jax.numpy as jnp
  import numpy as np
  from experiments import temperature_scaling_overlap as m
  # One jitted program serves both calls (alpha traced; eager Beta sampling compiles dozens of small programs).
  mixup_batch = jax.jit(m.mixup_batch)
  # Mixup with alpha -> 0 degenerates to lambda in {0, 1}: mixed labels stay one-hot.
  x, y = mixup_batch(jax.random.key(0), jnp.eye(4), jnp.eye(4), 1e-3)
  assert float(jnp.max(y)) > 0.99
  # One lambda per batch (the authors' GeneralMixupLoss): with x = y = I, row i is lambda e_i + (1 - lambda) e_p(i),
  # so every row that is not mixed with itself carries the same weight on its own coordinate.
  # (The same shapes as above: no new compilation.)
  x, y = mixup_batch(jax.random.key(3), jnp.eye(4), jnp.eye(4), 1.0)
  x, y = np.asarray(x), np.asarray(y)
  diag = np.diagonal(y)
  moved = diag < 1 - 1e-6
  assert int(np.sum(moved)) >= 2 and float(np.ptp(diag[moved])) < 1e-6
  assert np.array_equal(x, y)


@pytest.mark.slow  # ~13 s; its first mutation test runs the experiment at TINY size in the default run
def test_grokking_lazy_to_rich_tiny(tmp_path):
  from experiments import grokking_lazy_to_rich as m
  r = _check(m, m.Config(dim=8, n_train=16, n_test=16, n_ntk=8, width=16, alphas=(0.5, 2.0), num_steps=20,
                         log_every=10, alignment_every=10, num_seeds=1), tmp_path, 5)
  assert len(r["0.5"]["alignment"]) == 1 and len(r["0.5"]["alignment"][0]) == 3   # [seed][t]


def test_grokking_lazy_to_rich_quadratic_target_closed_form():
  from experiments import grokking_lazy_to_rich as m
  # The target is an exactly representable quadratic form with mean 0 and variance 1 (closed form).
  import jax
  @jax.jit   # one program for the draw, the target and its moments (eager: a dozen compiles)
  def moments():
    y = m.quadratic_target(jax.random.normal(jax.random.key(0), (200000, 6)), jax.numpy.ones(6))
    return y.mean(), y.var()
  mean, var = moments()
  assert abs(float(mean)) < 0.01 and abs(float(var) - 1.0) < 0.02


@pytest.mark.slow  # ~12 s; its first mutation test runs the experiment at TINY size in the default run
def test_more_is_better_tiny(tmp_path):
  from experiments import more_is_better as m
  r = _check(m, m.Config(num_dims=50, ns=(8, 16), ps=(4, 8), num_ridges=3, num_seeds=1), tmp_path, 4)
  assert len(r["best_test_mse"]) == 2 and len(r["best_test_mse"][0]) == 3  # p = 4, 8, inf


def test_grokking_padded_batch_mean_equals_the_unpadded_mean():
  # The full batch (5107, prime) padded to a multiple of the device count with zero-weight examples: the padded mean
  # is the unpadded mean up to float32 summation order (both checked against a float64 mean), its gradient is zero on
  # the padding even where the padded entries are non-finite, and it is the same number under jax.jit.
  import jax
  import jax.numpy as jnp
  import numpy as np
  from experiments import grokking_numerical_stability as m
  x = np.random.default_rng(0).exponential(size=5107).astype(np.float32)
  exact = np.mean(x.astype(np.float64))
  mean_and_grad = jax.jit(lambda v: (m.padded_mean(v, 5107), jax.grad(lambda u: m.padded_mean(u, 5107))(v)))
  for pad in (1, 3):
    padded = np.concatenate([x, np.full((pad,), np.inf, np.float32)])
    got, g = mean_and_grad(padded)   # the value under jax.jit, and its gradient, in one program per padding
    got, g = float(got), np.asarray(g)
    assert abs(got - exact) <= 1e-6 * exact and abs(float(jnp.mean(jnp.asarray(x))) - exact) <= 1e-6 * exact
    np.testing.assert_array_equal(g[5107:], 0.0)
    np.testing.assert_allclose(g[:5107], 1.0 / 5107, rtol=1e-7)


def test_grokking_within_budget_keeps_the_frozen_row_when_the_budget_is_not_a_logged_step():
  """[185] a run frozen at step 300 logged every 500 steps is read at its first row at or after 300, as step 300."""
  import numpy as np
  from experiments.grokking_numerical_stability import within_budget
  keep, at = within_budget(np.array([500, 1000, 1500]), 300)
  assert keep.tolist() == [True, False, False] and at[keep].tolist() == [300]
  keep, at = within_budget(np.array([50, 100, 150]), 100)
  assert keep.tolist() == [True, True, False] and at[keep].tolist() == [50, 100]
  keep, at = within_budget(np.array([50, 100]), 20000)
  assert keep.tolist() == [True, True] and at.tolist() == [50, 100]
