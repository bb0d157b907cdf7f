"""NPO vs a float64 NumPy transcription of -(2/beta) log sigmoid(-beta log(pi/pi_ref)) (Zhang et al. 2024)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.losses import npo


def np_npo(logp, logp_ref, beta):
  x = -beta * (np.asarray(logp, np.float64) - np.asarray(logp_ref, np.float64))
  return -(2 / beta) * (-np.logaddexp(0.0, -x))  # log sigmoid(x) = -log(1 + e^-x)


@pytest.mark.parametrize("n,beta", [(1, 0.1), (5, 1.0), (7, 3.0)])
def test_npo_matches_numpy_values_and_grad(n, beta):
  rng = np.random.default_rng(n)
  lp = rng.normal(size=n) * 5 - 10
  lr = rng.normal(size=n) * 5 - 10
  with jax.enable_x64(True):
    got, g, g_ref_arg = jax.jit(lambda lp, lr: (  # one program: value and both gradients
        npo.npo_loss(lp, lr, beta=beta), jax.grad(lambda a: npo.npo_loss(a, lr, beta=beta).sum())(lp),
        jax.grad(lambda b: npo.npo_loss(lp, b, beta=beta).sum())(lr)))(jnp.asarray(lp), jnp.asarray(lr))
  np.testing.assert_allclose(np.asarray(got), np_npo(lp, lr, beta), rtol=1e-12)
  h = 1e-6
  fd = (np_npo(lp + h, lr, beta) - np_npo(lp - h, lr, beta)) / (2 * h)
  np.testing.assert_allclose(np.asarray(g), fd, rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(g_ref_arg), 0.0)  # the reference model is frozen


def test_npo_gradient_is_weighted_ga_gradient():
  # grad_theta NPO = W * grad_theta GA, W = 2 pi^b / (pi^b + pi_ref^b), on a tiny softmax "model".
  rng = np.random.default_rng(0)
  theta_np = rng.normal(size=(4, 6))
  ref_np = rng.normal(size=(4, 6))
  y = np.array([1, 0, 5, 3])
  beta = 0.5
  with jax.enable_x64(True):
    logp = lambda th: jax.nn.log_softmax(th)[jnp.arange(4), y]

    @jax.jit
    def run(theta, ref_theta):  # one program
      lref = logp(ref_theta)
      g_npo = jax.jacrev(lambda th: npo.npo_loss(logp(th), lref, beta=beta))(theta)  # [4, 4, 6]
      g_ga = jax.jacrev(lambda th: npo.ga_loss(logp(th)))(theta)
      return g_npo, g_ga, npo.npo_weight(logp(theta), lref, beta=beta), logp(theta), lref

    g_npo, g_ga, w, lp_theta, lref = run(jnp.asarray(theta_np), jnp.asarray(ref_np))
    pi, pr = np.exp(np.asarray(lp_theta)), np.exp(np.asarray(lref))
  np.testing.assert_allclose(np.asarray(g_npo), np.asarray(w)[:, None, None] * np.asarray(g_ga), rtol=1e-10,
                             atol=1e-14)
  np.testing.assert_allclose(np.asarray(w), 2 * pi ** beta / (pi ** beta + pr ** beta), rtol=1e-10)
  assert np.all((np.asarray(w) > 0) & (np.asarray(w) < 2))


def test_small_beta_recovers_ga_up_to_a_constant():
  with jax.enable_x64(True):
    lp = jnp.array([-3.0, -1.0, -7.5], jnp.float64)
    lr = jnp.array([-2.0, -2.0, -2.0], jnp.float64)
    beta = 1e-6
    v = jax.jit(lambda lp, lr: npo.npo_loss(lp, lr, beta=beta) - 2 / beta * np.log(2))(lp, lr)
  np.testing.assert_allclose(np.asarray(v), np.asarray(lp - lr), atol=1e-4)


def test_sequence_log_prob():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(2, 3, 5))
  tgt = rng.integers(0, 5, (2, 3))
  mask = np.array([[1, 1, 0], [1, 1, 1]])
  with jax.enable_x64(True):
    got = jax.jit(npo.sequence_log_prob)(jnp.asarray(logits), jnp.asarray(tgt), jnp.asarray(mask))
  lsm = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  ref = (np.take_along_axis(lsm, tgt[..., None], -1)[..., 0] * mask).sum(-1)
  np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.bfloat16])
def test_stability(dtype):
  lp = jnp.array([1e4, -1e4, 0.0], dtype)
  lr = jnp.array([-1e4, 1e4, 0.0], dtype)
  v, g = jax.jit(lambda lp: (npo.npo_loss(lp, lr, beta=0.1),  # value and gradient in one program
                             jax.grad(lambda a: npo.npo_loss(a, lr, beta=0.1).astype(jnp.float32).sum())(lp)))(lp)
  assert v.dtype == dtype
  assert np.all(np.isfinite(np.asarray(v, np.float32))) and np.all(np.isfinite(np.asarray(g, np.float32)))


def test_bad_inputs():
  with pytest.raises(ValueError, match="beta"):
    npo.npo_loss(jnp.zeros(3), jnp.zeros(3), beta=0.0)
  with pytest.raises(ValueError, match="same shape"):
    npo.npo_loss(jnp.zeros(3), jnp.zeros(2))
  with pytest.raises(TypeError, match="logp must be a floating"):
    npo.npo_loss(jnp.zeros(3, jnp.int32), jnp.zeros(3))
  with pytest.raises(ValueError, match="logits must be"):
    npo.sequence_log_prob(jnp.zeros((2, 3)), jnp.zeros((2, 3), jnp.int32))
