"""The aggregate-responses experiment [194]: the library-loss minimisers equal closed-form least squares."""

import jax
import numpy as np

from experiments import aggregate_responses as exp
from jaxlib_methods.runner import experiment as exp_lib


def test_minimisers_are_the_closed_form_least_squares():
  cfg = exp_lib.get("aggregate_responses").config("cpu", ("dim=5", "n=80", "bag_size=4"))
  with jax.enable_x64(True):
    # Jitted as in exp.run (one compiled program each, rho traced: one compile serves both ends) instead of eager
    # op-by-op dispatch of the grad and the Hessian.
    x, bags, ybar, theta = jax.jit(exp.draw, static_argnums=0)(cfg, jax.random.key(3))
    estimate = jax.jit(exp.estimate, static_argnums=0)
    bag = np.asarray(estimate(cfg, x, bags, ybar, 1.0))
    inst = np.asarray(estimate(cfg, x, bags, ybar, 0.0))
  x, bags, ybar = np.asarray(x), np.asarray(bags), np.asarray(ybar)
  xbar = np.stack([x[bags == b].mean(0) for b in range(len(ybar))])
  np.testing.assert_allclose(bag, np.linalg.lstsq(xbar, ybar, rcond=None)[0], rtol=1e-9)  # OLS on bag means
  np.testing.assert_allclose(inst, np.linalg.lstsq(x, ybar[bags], rcond=None)[0], rtol=1e-9)  # OLS, bag labels
  assert sorted(np.bincount(bags)) == [4] * 20


def test_claims_logic():
  res = {"bag": {"bias": 0.01, "variance": 1.0}, "instance": {"bias": 0.8, "variance": 0.1}, "rho_star": 0.9,
         "star_minus_best_end": {"mean": -0.2, "lo": -0.3, "hi": -0.1, "n": 10}}
  assert all(c.passed for c in exp.claims(res))
  assert not exp.claims(dict(res, rho_star=1.0))[3].passed  # an optimum at the end is not an interpolation win
  assert not exp.claims(dict(res, bag={"bias": 0.3, "variance": 1.0}))[0].passed
