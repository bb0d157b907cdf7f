"""The TESLA experiment [60]: the claims' logic on hand-made results (no training)."""

from experiments import tesla_mtt as exp


def _results(**over):
  r = {"grad": {"1": {"vs_eq6": 1e-7, "vs_full_bptt": 1e-7}, "10": {"vs_eq6": 2e-7, "vs_full_bptt": 0.3}},
       "grad_steps": 10, "grad_reference": "paper_eq6",
       "memory": {"N": [10, 20, 40], "tesla": [100, 100, 100], "bptt": [100, 200, 400]},
       "soft_minus_hard": {"mean": 0.1, "lo": 0.05, "hi": 0.15, "n": 3},
       "hard_minus_random": {"mean": 0.1, "lo": 0.0, "hi": 0.2, "n": 3}}
  r.update(over)
  return r


def test_claims_pass_on_the_expected_results_and_fail_on_wrong_ones():
  assert all(c.passed for c in exp.claims(_results()))
  by = {c.claim: c for c in exp.claims(_results(grad_reference="full_bptt"))}
  assert not by[next(k for k in by if k.startswith("TESLA's accumulated gradient"))].passed
  grows = {c.claim: c for c in exp.claims(_results(memory={"N": [10, 20, 40], "tesla": [100, 200, 400],
                                                           "bptt": [100, 200, 400]}))}
  assert not grows[next(k for k in grows if k.startswith("TESLA's compiled peak"))].passed
  assert len(exp.claims(_results(memory={"N": [], "tesla": [], "bptt": []}))) == 5  # TINY: memory not measured


def test_train_on_synset_matches_a_numpy_transcription_of_evaluate_synset():
  """utils.evaluate_synset (justincui03/tesla), full batch: torch.optim.SGD(momentum 0.9, weight_decay 5e-4) for
  epochs + 1 steps, the rate x 0.1 and a fresh optimiser after epoch epochs // 2 + 1; float64 NumPy on least squares."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  rng = np.random.default_rng(0)
  x, y, w0 = rng.normal(size=(6, 3)), rng.normal(size=6), rng.normal(size=3)
  lr, epochs = 0.05, 7

  def loss(p, x, y):
    return 0.5 * jnp.mean((x @ p["w"] - y) ** 2)

  w, buf, rate = w0.copy(), None, lr
  for ep in range(epochs + 1):
    g = x.T @ (x @ w - y) / len(y) + 5e-4 * w
    buf = g if buf is None else 0.9 * buf + g
    w = w - rate * buf
    if ep == epochs // 2 + 1:
      rate, buf = rate * 0.1, None
  with jax.enable_x64(True):
    out = jax.jit(lambda p, r: exp.train_on_synset(loss, p, jnp.asarray(x), jnp.asarray(y), r, epochs))(
        {"w": jnp.asarray(w0)}, jnp.asarray(lr))
  np.testing.assert_allclose(np.asarray(out["w"]), w, rtol=1e-12)
