"""Synthetic data sets vs closed forms (counts, densities, scores, Hermite norms, entropy rates)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import data


def test_modular_arithmetic_one_hot_and_tokens():
  key = jax.random.key(0)
  ds = data.modular_arithmetic(key, 7, train_fraction=0.4)
  assert ds.x_train.shape == (20, 14) and ds.x_test.shape == (29, 14)
  x = np.concatenate([ds.x_train, ds.x_test])
  y = np.concatenate([ds.y_train, ds.y_test])
  a, b = x[:, :7].argmax(1), x[:, 7:].argmax(1)
  assert np.all(x.sum(1) == 2)
  np.testing.assert_array_equal(y, (a + b) % 7)
  assert len(set(zip(a.tolist(), b.tolist()))) == 49  # every pair exactly once
  tok = data.modular_arithmetic(key, 7, operation="mul", encoding="tokens")
  np.testing.assert_array_equal(tok.y_train, (tok.x_train[:, 0] * tok.x_train[:, 1]) % 7)
  # Same key -> same split; different key -> different split.
  np.testing.assert_array_equal(data.modular_arithmetic(key, 7).y_train, ds.y_train)
  assert not np.array_equal(data.modular_arithmetic(jax.random.key(1), 7).x_train, ds.x_train)
  # 'floor' is the official code's int(): 0.4 * 49 = 19.6 -> 19 (round: 20); p = 113 -> 5107 as in their logs.
  assert data.modular_arithmetic(key, 7, train_fraction=0.4, rounding="floor").x_train.shape == (19, 14)
  assert data.modular_arithmetic(key, 113, encoding="tokens", rounding="floor").y_train.shape == (5107,)


def test_modular_arithmetic_errors():
  with pytest.raises(ValueError, match="train_fraction"):
    data.modular_arithmetic(jax.random.key(0), 7, train_fraction=1.0)
  with pytest.raises(ValueError, match="p must be"):
    data.modular_arithmetic(jax.random.key(0), 1)
  with pytest.raises(ValueError, match="rounding"):
    data.modular_arithmetic(jax.random.key(0), 7, rounding="ceil")


def test_gaussian_mixture_density_and_score_closed_form():
  mix = data.make_gaussian_mixture([0.3, 0.7], [[-2.0], [1.5]], [0.5, 1.0])
  x = jnp.linspace(-4, 4, 9)[:, None]
  xs = np.asarray(x[:, 0], np.float64)
  pdf = lambda m, s: np.exp(-0.5 * ((xs - m) / s) ** 2) / (s * np.sqrt(2 * np.pi))
  p = 0.3 * pdf(-2, 0.5) + 0.7 * pdf(1.5, 1.0)
  dp = 0.3 * pdf(-2, 0.5) * (-2 - xs) / 0.25 + 0.7 * pdf(1.5, 1.0) * (1.5 - xs)
  # Jitted: the density and score in one program, the draw and its moments in another (eager: ~60 compiles).
  logp, score = jax.jit(lambda m, x: (data.gaussian_mixture_log_density(m, x), data.gaussian_mixture_score(m, x)))(
      mix, x)
  np.testing.assert_allclose(np.exp(np.asarray(logp)), p, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(score)[:, 0], dp / p, rtol=1e-4, atol=1e-5)

  @jax.jit
  def sample_moments(key, mix):
    xs_, comp = data.sample_gaussian_mixture(key, mix, 20000)
    return jnp.mean(comp == 1), jnp.mean(xs_)

  frac1, mean = sample_moments(jax.random.key(0), mix)
  assert abs(float(frac1) - 0.7) < 0.02
  assert abs(float(mean) - (0.3 * -2 + 0.7 * 1.5)) < 0.03


def test_overlapping_classes_posterior_sums_to_one_and_errors():
  mix = data.overlapping_classes(3, 4, 2.0)
  post = jax.jit(data.gaussian_mixture_posterior)(mix, jnp.ones((5, 4)))
  np.testing.assert_allclose(np.asarray(post).sum(1), 1.0, rtol=1e-6)
  with pytest.raises(ValueError, match="stds"):
    data.make_gaussian_mixture([1.0], [[0.0]], [0.0])
  with pytest.raises(ValueError, match="num_classes"):
    data.overlapping_classes(5, 3, 1.0)


def test_teacher_student_hermite_moments():
  # E[He_k(z)^2] = k! and E[He_j He_k] = 0 for j != k, z ~ N(0, 1).
  z = np.random.default_rng(0).normal(size=400000)
  # He_1..He_3 on the draws and He_3(2) in one jitted program (eager: a compile per op and shape).
  he = jax.jit(lambda z, two: [data.hermite(k, z) for k in (1, 2, 3)] + [data.hermite(3, two)])(
      jnp.asarray(z), jnp.array([2.0]))
  for (k, fact), hk in zip([(1, 1), (2, 2), (3, 6)], he):
    assert np.mean(np.asarray(hk) ** 2) == pytest.approx(fact, rel=0.05)
  np.testing.assert_allclose(np.asarray(he[3]), [8 - 6], rtol=1e-6)
  t = jax.jit(lambda key: data.teacher_student(key, 64, 5, teacher="hermite", degree=2))(jax.random.key(0))
  z = np.asarray(t.x) @ np.asarray(t.beta)
  np.testing.assert_allclose(np.asarray(t.y), z ** 2 - 1, rtol=1e-4, atol=1e-5)
  assert float(jnp.linalg.norm(t.beta)) == pytest.approx(1.0, rel=1e-6)
  with pytest.raises(ValueError, match="noise_std"):
    data.teacher_student(jax.random.key(0), 4, 2, noise_std=-1.0)


def test_power_law_task_spectrum_and_target_power():
  task = data.power_law_task(50, alpha=2.0, beta=1.5, noise_std=0.1)
  np.testing.assert_allclose(np.asarray(task.eigenvalues), np.arange(1, 51) ** -2.0, rtol=1e-6)
  power = np.asarray(task.eigenvalues) * np.asarray(task.coefficients) ** 2
  np.testing.assert_allclose(power.sum(), 1.0, rtol=1e-5)
  var_y = jax.jit(lambda key, task: jnp.var(data.sample_power_law(key, task, 40000)[1]))(jax.random.key(0), task)
  assert float(var_y) == pytest.approx(1.0 + 0.01, rel=0.05)  # E[y^2] = sum lambda v^2 + noise^2
  with pytest.raises(ValueError, match="alpha"):
    data.power_law_task(5, alpha=0.0)


def test_markov_language_entropy_rate_matches_empirical():
  lang = data.random_markov_language(jax.random.key(0), 6, concentration=0.5)
  P, pi = np.asarray(lang.transition, np.float64), np.asarray(lang.stationary, np.float64)
  np.testing.assert_allclose(pi @ P, pi, atol=1e-5)
  seqs = np.asarray(data.sample_markov_sequences(jax.random.key(1), lang, 64, 400))
  # Empirical cross-entropy of the true model on samples -> the entropy rate.
  nll = -np.log(P[seqs[:, :-1], seqs[:, 1:]]).mean()
  assert nll == pytest.approx(data.entropy_rate(lang), rel=0.03)
  uniform = data.MarkovLanguage(jnp.full((4, 4), 0.25), jnp.full((4,), 0.25))
  assert data.entropy_rate(uniform) == pytest.approx(np.log(4))


def test_teacher_student_rejects_a_zero_teacher_direction():
  """beta = 0 was normalised by its zero norm: NaN targets returned silently; now a ValueError."""
  with pytest.raises(ValueError, match="beta"):
    data.teacher_student(jax.random.key(0), 4, 3, beta=jnp.zeros(3))
  with pytest.raises(ValueError, match="beta"):
    data.teacher_student(jax.random.key(0), 4, 3, beta=jnp.array([1.0, jnp.nan, 0.0]))
  t = data.teacher_student(jax.random.key(0), 4, 3, beta=jnp.array([0.0, 2.0, 0.0]))
  np.testing.assert_allclose(np.asarray(t.y), np.asarray(t.x)[:, 1], rtol=1e-6)


def test_make_gaussian_mixture_rejects_non_finite_parameters():
  """NaN weights (NaN mixture weights after normalising) and infinite stds / NaN means were accepted silently."""
  with pytest.raises(ValueError, match="weights"):
    data.make_gaussian_mixture([np.nan, 1.0], [[0.0], [1.0]], [1.0, 1.0])
  with pytest.raises(ValueError, match="stds"):
    data.make_gaussian_mixture([1.0, 1.0], [[0.0], [1.0]], [1.0, np.inf])
  with pytest.raises(ValueError, match="means"):
    data.make_gaussian_mixture([1.0, 1.0], [[0.0], [np.nan]], [1.0, 1.0])


def test_power_law_task_rejects_a_non_integer_dimension():
  """num_dims = 3.5 silently built a 4-dimensional task (np.arange(1, 4.5)); now a ValueError."""
  with pytest.raises(ValueError, match="num_dims"):
    data.power_law_task(3.5)
  with pytest.raises(ValueError, match="num_dims"):
    data.power_law_task(0)
  assert data.power_law_task(np.int64(3)).eigenvalues.shape == (3,)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_rank_generators_accept_half_precision_dtypes(dtype):
  """dtype=bfloat16 / float16 (floating dtypes, as documented) crashed in QR ("Unsupported dtype"); the factors are now
  drawn in float32 and the result cast, so the float32 output is unchanged."""
  key = jax.random.key(0)
  m = data.low_rank_matrix(key, 8, 6, 2, condition_number=3.0, dtype=dtype)
  m32 = data.low_rank_matrix(key, 8, 6, 2, condition_number=3.0)
  assert m.dtype == dtype and m32.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(m, np.float32), np.asarray(m32), atol=2e-2)
  np.testing.assert_allclose(np.linalg.svd(np.asarray(m32, np.float64), compute_uv=False)[:3], [3.0, 1.0, 0.0],
                             atol=1e-5)
  prob = data.robust_sensing_problem(key, 4, 2, 5, dtype=dtype)
  assert prob.x_star.dtype == dtype and prob.y.dtype == dtype and prob.a.dtype == dtype


def test_low_rank_generators_accept_numpy_integer_sizes():
  m = data.low_rank_matrix(jax.random.key(0), np.int64(5), np.int32(4), np.int64(2))
  assert m.shape == (5, 4)
  assert data.robust_sensing_problem(jax.random.key(0), np.int64(4), np.int64(2), np.int64(3)).a.shape == (3, 4, 4)
  with pytest.raises(ValueError, match="n1"):
    data.low_rank_matrix(jax.random.key(0), 2.5, 4, 2)


def test_low_rank_matrix_factors_are_haar_distributed():
  """Q of a plain Householder QR is not Haar: its first column always has Q[0, 0] < 0, so a rank-1 M had M[0, 0] > 0
  for every key (and E[M] != 0 at any rank). With Mezzadri's sign correction M[0, 0] is positive half the time and
  E[M] = 0 (U -> -U is a symmetry of the Haar law)."""
  keys = jax.random.split(jax.random.key(0), 2000)
  for k in (1, 2):
    m = np.asarray(jax.vmap(lambda key: data.low_rank_matrix(key, 5, 4, k))(keys), np.float64)
    frac = (m[:, 0, 0] > 0).mean()
    assert abs(frac - 0.5) < 0.05, (k, frac)                       # binomial std 0.011
    assert np.abs(m.mean(0)).max() < 0.06, (k, m.mean(0))           # per-entry std error ~0.015 (rank 1), ~0.02
    s = np.linalg.svd(m[0], compute_uv=False)
    np.testing.assert_allclose(s[:k], np.linspace(1.0, 1.0, k), rtol=1e-5)


def test_spurious_feature_generators_accept_numpy_integer_sizes():
  """np.int64 sizes (e.g. from a NumPy config grid) were rejected as "must be an int"."""
  means = data.spurious_feature_means(jax.random.key(0), np.int64(3), np.int64(2), np.int64(4))
  assert means.shape == (3, 2, 4)
  d = data.spurious_feature_data(jax.random.key(1), np.int64(5), means, num_invariant=np.int64(1), flip_prob=0.5)
  assert d.x.shape == (5, 3, 4)
  np.testing.assert_array_equal(np.asarray(d.classes[:, 0]), np.asarray(d.y))
  with pytest.raises(ValueError, match="num_features"):
    data.spurious_feature_means(jax.random.key(0), 2.0, 2, 4)


def test_gaussian_mixture_functions_reject_points_of_the_wrong_dimension():
  """x [N, 1] against a 2-D mixture broadcast silently ([N, 1] - [K, 2]): log p(x) of the point (a, a) was returned
  for a one-coordinate input. Now a ValueError, as integer points (TypeError)."""
  mix = data.make_gaussian_mixture([0.3, 0.7], [[0.0, 0.0], [3.0, 1.0]], [0.5, 2.0])
  for fn in (data.gaussian_mixture_log_density, data.gaussian_mixture_score, data.gaussian_mixture_posterior):
    with pytest.raises(ValueError, match="x must be"):
      fn(mix, jnp.ones((3, 1)))
    with pytest.raises(ValueError, match="x must be"):
      fn(mix, jnp.ones((2,)))
    with pytest.raises(TypeError, match="x"):
      fn(mix, jnp.ones((3, 2), jnp.int32))
    assert jax.jit(fn)(mix, jnp.ones((3, 2))).shape[0] == 3


def test_sample_markov_sequences_accepts_numpy_integer_sizes():
  lang = data.random_markov_language(jax.random.key(0), 4)
  a = data.sample_markov_sequences(jax.random.key(1), lang, np.int64(3), np.int32(5))
  np.testing.assert_array_equal(np.asarray(a), np.asarray(data.sample_markov_sequences(jax.random.key(1), lang, 3, 5)))
  with pytest.raises(ValueError, match="batch must be an int >= 1"):
    data.sample_markov_sequences(jax.random.key(1), lang, 3.0, 5)


def test_bfloat16_generators_draw_gaussian_noise_with_tails():
  """jax.random.normal in bfloat16 takes only 128 values, none beyond |z| = 2.9 (P(|z| > 3) = 0.0027 is lost): the
  noise of a bfloat16 sample was not N(0, sigma^2). Noise is now drawn in float32 and the sample cast."""
  means = data.spurious_feature_means(jax.random.key(0), 2, 2, 4)
  d = data.spurious_feature_data(jax.random.key(1), 50_000, means.astype(jnp.bfloat16), num_invariant=2,
                                 noise_std=1.0)
  assert d.x.dtype == jnp.bfloat16
  z = (np.asarray(d.x, np.float64) - np.asarray(means)[np.arange(2)[None], np.asarray(d.classes)]).ravel()
  assert abs((np.abs(z) > 3).mean() - 0.0027) < 0.0006 and abs(z.var() - 1) < 0.02
  prob = data.robust_sensing_problem(jax.random.key(2), 20, 2, 2000, dtype=jnp.bfloat16)
  a = np.asarray(prob.a, np.float64).ravel()
  assert abs((np.abs(a) > 3).mean() - 0.0027) < 0.0006
  d32 = data.spurious_feature_data(jax.random.key(1), 1000, means, num_invariant=1, flip_prob=0.3)
  assert d32.x.dtype == jnp.float32
