"""The TESLA experiment [60]: the claims' logic on hand-made results, the structured toy's data (no training); its
TINY run (slow)."""

import pytest

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


def _structured(**over):
  import dataclasses
  return dataclasses.replace(exp.STRUCTURED100, **{"n_train": 400, "n_test": 200, **over})


def test_superclass_data_shapes_determinism_and_geometry():
  import numpy as np

  c = _structured()
  xtr, ytr, xte, yte = exp.make_data(c, 3)
  assert xtr.shape == (400, c.dim) and xte.shape == (200, c.dim) and xtr.dtype == np.float32
  assert ytr.shape == (400,) and yte.shape == (200,) and ytr.dtype == np.int32
  assert 0 <= ytr.min() and ytr.max() < c.classes
  again = exp.make_data(c, 3)
  assert all(np.array_equal(a, b) for a, b in zip((xtr, ytr, xte, yte), again))
  assert not np.array_equal(xtr, exp.make_data(c, 4)[0])
  # the centres: superclass spread super_scale, class offsets sub_scale, classes in contiguous blocks of 10
  big = _structured(superclasses=50, classes=5000, dim=40)
  sup, centres = exp.superclass_centres(big, np.random.default_rng(0))
  assert sup.shape == (50, 40) and centres.shape == (5000, 40)
  np.testing.assert_allclose(sup.std(), big.super_scale, rtol=0.05)
  offsets = centres - sup[exp.superclass_of(big, np.arange(5000))]
  np.testing.assert_allclose(offsets.std(), big.sub_scale, rtol=0.02)
  assert list(exp.superclass_of(c, np.array([0, 9, 10, 99]))) == [0, 0, 1, 9]
  # points = class centre + N(0, I): the residuals from the (seeded) centres have unit std
  _, centres = exp.superclass_centres(c, np.random.default_rng(3))
  np.testing.assert_allclose((xtr - centres[ytr]).std(), 1.0, rtol=0.05)
  # within a superclass the classes are closer than across superclasses
  d = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
  same = exp.superclass_of(c, np.arange(100))[:, None] == exp.superclass_of(c, np.arange(100))[None]
  assert d[same & (d > 0)].max() < d[~same].min()


def test_superclass_data_rejects_uneven_superclasses():
  import pytest

  with pytest.raises(ValueError, match="multiple of superclasses"):
    exp.make_superclass_data(_structured(classes=95), 0)
  from jaxlib_methods.runner import experiment as exp_lib
  with pytest.raises(exp_lib.UsageError, match="classes % superclasses"):
    exp_lib.get("tesla_mtt").config("cpu", ("data=superclasses", "classes=95"))
  exp_lib.get("tesla_mtt").config("cpu", ("classes=95",))   # the blob toy has no superclasses to divide into


def test_structure_diagnostics_on_hand_made_labels():
  import numpy as np

  c = _structured()
  y_test = np.array([[0, 1, 15, 30]])                                   # one seed
  pred = np.array([[[0, 2, 25, 30], [5, 1, 15, 99]]])  # 2 experts; errors: 2 in, 25 out, 5 in, 99 out
  y_hard = np.array([[0, 10]])
  soft = np.zeros((1, 2, 100))
  soft[0, 0, [0, 1, 50]] = [0.5, 0.3, 0.2]                              # own 0.5, rest of superclass 0.3, outside 0.2
  soft[0, 1, [11, 20]] = [0.6, 0.4]                                      # own 0, rest 0.6, outside 0.4
  out = exp.structure_diagnostics(c, pred, y_test, soft, y_hard)
  assert out["expert_errors_within_superclass"] == [0.5]
  np.testing.assert_allclose(out["soft_mass_own_class"], [0.25])
  np.testing.assert_allclose(out["soft_mass_rest_of_superclass"], [0.45])
  np.testing.assert_allclose(out["soft_mass_outside_superclass"], [0.3])
  np.testing.assert_allclose(out["soft_argmax_keeps_class"], [0.5])


@pytest.mark.slow
def test_structured_tiny_run_reports_the_structure(tmp_path):
  """The TINY run on the structured toy (~20-30 s on 2 cores): the structure diagnostics are stored, the claims built."""
  import numpy as np
  from jaxlib_methods.runner import experiment as exp_lib

  e = exp_lib.get("tesla_mtt")
  with pytest.raises(ValueError, match="fewer than ipc"):   # TINY's 400 points leave some of the 100 classes empty
    e.run(e.config("structured100", exp.TINY), tmp_path / "short")
  res = e.run(e.config("structured100", exp.TINY + ("n_train=1500",)), tmp_path)
  st = res["structure"]
  assert set(st) == {"expert_errors_within_superclass", "soft_mass_own_class", "soft_mass_rest_of_superclass",
                     "soft_mass_outside_superclass", "soft_argmax_keeps_class"}
  assert all(len(v) == 2 and np.all(np.isfinite(v)) for v in st.values())
  total = np.sum([st[k] for k in ("soft_mass_own_class", "soft_mass_rest_of_superclass",
                                  "soft_mass_outside_superclass")], axis=0)
  np.testing.assert_allclose(total, 1.0, rtol=1e-4)
  assert len(e.claims(res)) == 5
