"""WiSE-FT / output ensembles / FalseFalseTrue rate and the spurious-feature toy data of [112] (Lin et al., ICLR 2024,
arXiv:2309.17230), each against a float64 NumPy transcription or an exact count."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.analysis import false_false_true_rate, output_ensemble, wise_ft
from jaxlib_methods.data import spurious_feature_data, spurious_feature_means


def test_wise_ft_output_ensemble_and_fft_match_numpy_under_jit():
  rng = np.random.default_rng(0)
  t0 = {"a": rng.normal(size=(3, 2)).astype(np.float32), "b": [rng.normal(size=4).astype(np.float32)]}
  t1 = {"a": rng.normal(size=(3, 2)).astype(np.float32), "b": [rng.normal(size=4).astype(np.float32)]}
  l0, l1 = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)
  jitted = jax.jit(lambda a: (wise_ft(t0, t1, a), output_ensemble(l0, l1, a)))
  for alpha in (0.0, 0.3, 1.0):
    mixed, ens = jitted(jnp.float32(alpha))                      # alpha traced
    for x0, x1, m in zip(jax.tree.leaves(t0), jax.tree.leaves(t1), jax.tree.leaves(mixed)):
      np.testing.assert_allclose(m, (1 - alpha) * x0.astype(np.float64) + alpha * x1.astype(np.float64), atol=1e-6)
    np.testing.assert_allclose(ens, (1 - alpha) * l0.astype(np.float64) + alpha * l1.astype(np.float64), atol=1e-6)
  assert jax.tree.structure(wise_ft(t0, t1, 0.5)) == jax.tree.structure(t0)
  # FFT: an exact count on an enumerated table of all 8 (c0, c1, ce) combinations, twice each; batched [2, 16].
  combos = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)] * 2, bool)
  rate = false_false_true_rate(combos[:, 0], combos[:, 1], combos[:, 2])
  assert float(rate) == 2 / 16                                   # only (F, F, T)
  batched = false_false_true_rate(np.stack([combos[:, 0]] * 2), np.stack([combos[:, 1]] * 2),
                                  np.stack([combos[:, 2], np.zeros(16, bool)]))
  np.testing.assert_array_equal(batched, [2 / 16, 0.0])


def test_wise_ft_on_nnx_state_merges_back():
  m0, m1 = nnx.Linear(3, 2, rngs=nnx.Rngs(0)), nnx.Linear(3, 2, rngs=nnx.Rngs(1))
  g, s0 = nnx.split(m0)
  _, s1 = nnx.split(m1)
  mid = nnx.merge(g, wise_ft(s0, s1, 0.25))
  x = jnp.ones((1, 3))
  np.testing.assert_allclose(mid(x), 0.75 * m0(x) + 0.25 * m1(x), atol=1e-6)   # linear in the weights


@pytest.mark.parametrize("call, exc, needle", [
    (lambda: wise_ft({"a": np.ones(2, np.float32)}, {"a": np.ones(2, np.float32)}, 1.5), ValueError, "alpha"),
    (lambda: wise_ft({"a": np.ones(2, np.float32)}, {"a": np.ones(2, np.float32)}, True), TypeError, "alpha"),
    (lambda: wise_ft({"a": np.ones(2, np.float32)}, {"b": np.ones(2, np.float32)}, 0.5), ValueError, "structure"),
    (lambda: wise_ft({"a": np.ones(2, np.float32)}, {"a": np.ones(3, np.float32)}, 0.5), ValueError, "shape"),
    (lambda: wise_ft({"a": np.ones(2, np.int32)}, {"a": np.ones(2, np.int32)}, 0.5), TypeError, "theta0"),
    (lambda: output_ensemble(np.ones((2, 3), np.float32), np.ones((2, 4), np.float32), 0.5), ValueError, "logits1"),
    (lambda: output_ensemble(np.ones((2, 3), np.float32), np.ones((2, 3), np.float32), -0.1), ValueError, "alpha"),
    (lambda: false_false_true_rate(np.ones(3), np.ones(3, bool), np.ones(3, bool)), TypeError, "correct0"),
    (lambda: false_false_true_rate(np.ones(3, bool), np.ones(2, bool), np.ones(3, bool)), ValueError, "correct1"),
    (lambda: spurious_feature_means(jax.random.key(0), 3, 5, 4), ValueError, "dim"),
    (lambda: spurious_feature_data(jax.random.key(0), 4, jnp.ones((2, 2, 3)), num_invariant=3), ValueError,
     "num_invariant"),
    (lambda: spurious_feature_data(jax.random.key(0), 4, jnp.ones((2, 2, 3)), num_invariant=1, flip_prob=2.0),
     ValueError, "flip_prob"),
])
def test_bad_inputs_are_refused(call, exc, needle):
  with pytest.raises(exc, match=needle):
    call()


def test_spurious_feature_data_statistics():
  """Orthonormal means; ID: every feature carries y; OOD: only spurious features flip, at rate p (1 - 1/K) (a random
  class may be y); the noise has std sigma. Binomial/chi-square bounds at ~6 sigma (failure probability < 1e-8)."""
  f, k, d, n, p, sigma = 6, 4, 5, 8000, 0.4, 0.5
  means = jax.jit(spurious_feature_means, static_argnums=(1, 2, 3))(jax.random.key(1), f, k, d)
  # one compiled generator (flip_prob and noise_std traced) for the ID and the OOD set: jit-safe as well
  gen = jax.jit(lambda key, prob: spurious_feature_data(key, n, means, num_invariant=2, flip_prob=prob,
                                                        noise_std=jnp.float32(sigma)))
  gram = np.einsum("fkd,fld->fkl", np.asarray(means, np.float64), np.asarray(means, np.float64))
  np.testing.assert_allclose(gram, np.broadcast_to(np.eye(k), gram.shape), atol=1e-7)
  ind = gen(jax.random.key(2), jnp.float32(0.0))
  assert np.all(np.asarray(ind.classes) == np.asarray(ind.y)[:, None])
  ood = gen(jax.random.key(3), jnp.float32(p))
  changed = np.asarray(ood.classes) != np.asarray(ood.y)[:, None]
  assert not changed[:, :2].any()
  rate, q = changed[:, 2:].mean(), p * (1 - 1 / k)
  assert abs(rate - q) < 6 * np.sqrt(q * (1 - q) / (n * (f - 2)))
  resid = np.asarray(ood.x, np.float64) - np.asarray(means, np.float64)[np.arange(f)[None], np.asarray(ood.classes)]
  assert abs(resid.std() - sigma) < 6 * sigma / np.sqrt(2 * resid.size)
  assert abs(resid.mean()) < 6 * sigma / np.sqrt(resid.size)
  counts = np.bincount(np.asarray(ood.y), minlength=k)          # y uniform over K: chi-square, 3 dof, p ~ 1e-8
  assert np.sum((counts - n / k) ** 2 / (n / k)) < 40.0


def test_traced_alpha_outside_unit_interval_gives_nan():
  # A traced alpha outside [0, 1] used to extrapolate silently (alpha = 1.5 gave 1.5 theta1 - 0.5 theta0).
  t0, t1 = {"a": jnp.zeros(3)}, {"a": jnp.ones(3)}
  wise = jax.jit(lambda al: wise_ft(t0, t1, al))
  out = jax.jit(lambda al: output_ensemble(jnp.zeros((2, 3)), jnp.ones((2, 3)), al))
  np.testing.assert_allclose(np.asarray(wise(0.3)["a"]), 0.3, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(out(0.3)), 0.3, rtol=1e-6)
  for al in (1.5, -0.1):
    assert np.isnan(np.asarray(wise(al)["a"])).all()
    assert np.isnan(np.asarray(out(al))).all()
