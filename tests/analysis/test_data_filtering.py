"""[70] QQT scaling law with repetition against a float64 NumPy transcription of the piecewise law (epoch by epoch),
its closed forms (fresh data: a n^b; tau = inf: a n^b for any n; pools of equal utility: one pool of the total size),
and the fitter recovering (a, b, tau) exactly from a noiseless curve, its error shrinking with the noise."""

import math

import jax
import numpy as np
import pytest

from jaxlib_methods.analysis import fit_qqt, qqt_error, qqt_mix_error


def _np_law(n, pool, a, b, tau):
  """Epoch by epoch: y(N) = a N^b, then y(n) = y((k-1)N) (n / ((k-1)N))^(b 2^(-(k-1)/tau)) in epoch k."""
  if n <= pool:
    return a * n ** b
  y, k = a * pool ** b, 2
  while True:
    bk = b * 2.0 ** (-(k - 1) / tau)
    end = min(n, k * pool)
    y *= (end / ((k - 1) * pool)) ** bk
    if n <= k * pool:
      return y
    k += 1


def test_qqt_law_matches_numpy_and_closed_forms():
  n = np.array([1.0, 7.0, 100.0, 999.0, 1000.0, 1500.0, 2000.0, 4321.0, 9000.0], np.float32)

  @jax.jit
  def laws(n):   # one compile for every law of the test
    return (qqt_error(n, 1000.0, 2.0, -0.4, 1.5, max_epochs=9), qqt_error(n, 1000.0, 2.0, -0.4, math.inf, max_epochs=9),
            qqt_mix_error(n, [400.0, 600.0], 2.0, [-0.4, -0.4], 1.5, max_epochs=9),
            qqt_mix_error(n, [1000.0, 3000.0], 2.0, [-0.4, -0.2], 1.5, max_epochs=3))

  got, no_decay, mix, mix2 = (np.asarray(v) for v in laws(n))
  np.testing.assert_allclose(got, [_np_law(v, 1000.0, 2.0, -0.4, 1.5) for v in n], rtol=1e-5)
  np.testing.assert_allclose(no_decay, 2.0 * n ** -0.4, rtol=1e-5)
  np.testing.assert_allclose(mix, got, rtol=1e-6)
  # share-weighted utility: pools (1000, -0.4) + (3000, -0.2) == one pool of 4000 with b = -0.25
  np.testing.assert_allclose(mix2, [_np_law(v, 4000.0, 2.0, -0.25, 1.5) for v in n], rtol=1e-5)
  with pytest.raises(ValueError, match="max_epochs"):
    qqt_error(n, 1000.0, 2.0, -0.4, 1.5, max_epochs=2)
  with pytest.raises(ValueError, match="tau"):
    qqt_error(n, 1000.0, 2.0, -0.4, 0.0, max_epochs=9)


def test_fit_qqt_recovers_parameters_and_converges():
  n = np.geomspace(10, 5e4, 30)
  y = np.array([_np_law(v, 2000.0, 1.5, -0.35, 2.5) for v in n])
  fit = fit_qqt(n, y, 2000.0)
  assert fit["a"] == pytest.approx(1.5, rel=1e-4)
  assert fit["b"] == pytest.approx(-0.35, rel=1e-4)
  assert fit["tau"] == pytest.approx(2.5, rel=1e-3)
  rng = np.random.default_rng(0)
  errs = []
  for noise in (0.05, 0.01, 0.002):            # the fitted tau converges as the noise shrinks (fixed seed)
    e = [abs(fit_qqt(n, y * np.exp(noise * rng.normal(size=n.size)), 2000.0)["tau"] / 2.5 - 1) for _ in range(3)]
    errs.append(np.mean(e))
  assert errs[0] > errs[1] > errs[2] and errs[2] < 0.01
  with pytest.raises(ValueError, match="y"):
    fit_qqt(n, -y, 2000.0)
