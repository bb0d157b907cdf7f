"""Tests of jaxlib_methods/analysis/opposing_signals.py [195] on planted loss histories (a statistical recovery test
with a fixed seed and a stated failure probability) and against float64 NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.analysis import opposing_signals as osg


def _planted(seed, n=200, t=40, k=10, amp=1.0, noise=0.02):
  """Background examples: a slowly decaying loss plus N(0, noise^2) jitter per checkpoint. Group A (k examples) and
  group B (k others) oscillate in antiphase with amplitude `amp` = 50 noise standard deviations."""
  rng = np.random.default_rng(seed)
  perm = rng.permutation(n)
  a, b = perm[:k], perm[k:2 * k]
  base = np.exp(-np.arange(t) / 20.0)[:, None] * rng.uniform(0.5, 1.0, n)[None]
  hist = base + noise * rng.normal(size=(t, n))
  phase = (np.arange(t) % 2)[:, None].astype(float)
  hist[:, a] += amp * phase
  hist[:, b] += amp * (1 - phase)
  return hist.astype(np.float32), a, b


def test_opposing_signal_groups_recover_planted_groups():
  # Each swing moves a planted example by amp = 1 against changes of the others below 4 noise-sd = 0.08 + the
  # drift (< 0.05): a misranking needs a > 10 sd Gaussian event, probability < 1e-20 per draw; 5 fixed seeds.
  for seed in range(5):
    hist, a, b = _planted(seed)
    rising, falling, t = osg.opposing_signal_groups(hist, 10)
    # t = 0 goes 0 -> 1: group A rises, group B falls
    up, down = (a, b) if int(t) % 2 == 0 else (b, a)
    assert set(np.asarray(rising).tolist()) == set(up.tolist())
    assert set(np.asarray(falling).tolist()) == set(down.tolist())
    assert float(osg.group_swing_correlation(hist, a, b)) < -0.99
  # explicit step and jit, against NumPy's argsort of the float64 change
  hist, a, b = _planted(7)
  d = np.diff(hist.astype(np.float64), axis=0)[5]
  rising, falling, t = jax.jit(lambda h, s: osg.opposing_signal_groups(h, 10, step=s))(hist, 5)
  assert int(t) == 5
  np.testing.assert_array_equal(np.asarray(rising), np.argsort(-d)[:10])
  np.testing.assert_array_equal(np.asarray(falling), np.argsort(d)[:10])
  # the swing correlation vs NumPy's corrcoef; two in-phase random groups are not antiphase
  ref = np.corrcoef(np.diff(hist[:, a].mean(1)), np.diff(hist[:, b].mean(1)))[0, 1]
  assert float(osg.group_swing_correlation(hist, a, b)) == pytest.approx(ref, abs=1e-5)
  assert float(osg.group_swing_correlation(hist, a[:5], a[5:])) > 0.99
  with pytest.raises(ValueError, match="k must"):
    osg.opposing_signal_groups(hist, 150)
  with pytest.raises(ValueError, match="step"):
    osg.opposing_signal_groups(hist, 3, step=39)
  with pytest.raises(ValueError, match="group_b"):
    osg.group_swing_correlation(hist, a, jnp.asarray([300]))
