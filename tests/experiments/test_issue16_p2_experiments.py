"""The independent pieces of the issue-16 P2 toy-claim experiments [170][74][165][104] are right (cheap checks, no
training): each against a float64 NumPy transcription or a closed form."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from experiments import flad_mixing, gaqat_domain_shift, nm_gradient_flow
from jaxlib_methods.optim import lsq_levels


def test_nm_recipes_forward_and_gradient_match_the_paper():
  """[170] one forward/backward per recipe against NumPy: forward w (mask + (1 - mask) beta), gradient
  g + lam (1 - mask) w, with the mask keeping the n largest |w| of every m along the input axis."""
  cfg = nm_gradient_flow.Config(d=32, hidden=3, steps=100, log_every=10)
  rng = np.random.default_rng(0)
  w = rng.normal(size=(cfg.d, cfg.hidden)).astype(np.float32)
  cot = rng.normal(size=w.shape).astype(np.float32)
  t_dense, t_end = int(cfg.dense_fraction * cfg.steps), int(cfg.decay_end_fraction * cfg.steps)

  def mask_np(n):
    g = np.abs(w.astype(np.float64)).reshape(cfg.d // cfg.m, cfg.m, cfg.hidden)
    rank = np.argsort(np.argsort(-g, axis=1, kind="stable"), axis=1, kind="stable")
    return (rank < n).reshape(w.shape).astype(np.float64)

  t = t_dense + 5
  cases = {"sr_ste": (mask_np(cfg.n), 0.0, cfg.sr_ste_decay),
           "mdgf": (mask_np(cfg.n), np.exp(-np.log(1e3) / (t_end - t_dense) * 5), 0.0),
           "sdgf": (mask_np(cfg.m - 1), 0.0, cfg.sr_ste_decay)}          # first SDGF stage: 15:16
  f = jax.jit(lambda code, w, t: nm_gradient_flow.effective_w1(cfg, code, w, t))
  for code, method in enumerate(nm_gradient_flow.METHODS):
    mask, beta, lam = cases[method]
    out, vjp = jax.vjp(lambda w_: f(code, w_, t), jnp.asarray(w))
    np.testing.assert_allclose(np.asarray(out), w * (mask + (1 - mask) * beta), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(vjp(jnp.asarray(cot))[0]), cot + lam * (1 - mask) * w, rtol=1e-5,
                               atol=1e-7)
  # after the decay every recipe is exactly n:m
  for code in range(3):
    kept = (np.asarray(f(code, jnp.asarray(w), cfg.steps - 1)) != 0).reshape(cfg.d // cfg.m, cfg.m, -1).sum(1)
    assert kept.max() == cfg.n
  teacher, _ = nm_gradient_flow.make_teacher(cfg, 0)
  assert ((teacher != 0).reshape(cfg.d // cfg.m, cfg.m, -1).sum(1) == 1).all()   # the teacher is 1:16 itself


def test_gaqat_domains_shift_only_the_style_and_scales_start_at_lsq_init():
  cfg = dataclasses.replace(gaqat_domain_shift.Config(), n_test=5000)
  doms = gaqat_domain_shift.make_domains(cfg, 0)

  @jax.jit
  def draw(k):   # one compiled program: two domains' samples and the initial parameters
    d = tuple(map(jnp.asarray, doms))
    x_src, y_src = gaqat_domain_shift.sample(cfg, d, jax.random.fold_in(k, 0), 5000, 0)
    x_tgt, _ = gaqat_domain_shift.sample(cfg, d, jax.random.fold_in(k, 1), 5000, cfg.source_domains)
    return x_src, y_src, x_tgt, gaqat_domain_shift._init(cfg, jax.random.fold_in(k, 2))

  x_src, y_src, x_tgt, p = draw(jax.random.key(0))
  x_src, x_tgt, y_src = np.asarray(x_src, np.float64), np.asarray(x_tgt, np.float64), np.asarray(y_src)
  means = doms[0].astype(np.float64)
  c = cfg.content
  # content: the class means (the same in every domain); style: the domain's offset and scale
  np.testing.assert_allclose(x_src[y_src == 1, :c].mean(0), means[1], atol=0.15)
  np.testing.assert_allclose(x_src[:, c:].mean(0), doms[1][0], atol=0.2)
  np.testing.assert_allclose(x_tgt[:, c:].std(0), doms[2][-1], rtol=0.1)
  assert np.abs(doms[1][-1] - doms[1][0]).max() > 0.5        # the test style differs
  _, q_p = lsq_levels(cfg.bits)
  np.testing.assert_allclose(float(p["s1"]), 2 * np.abs(np.asarray(p["w1"], np.float64)).mean() / np.sqrt(q_p),
                             rtol=1e-5)


def test_flad_task_has_aligned_arms_first_and_the_test_loss_closed_form():
  cfg = flad_mixing.Config()
  w_t, w_aux, x, y = flad_mixing.make_task(cfg, 0)
  cos = w_aux @ w_t / np.linalg.norm(w_aux, axis=1)
  assert cos[:cfg.aligned].min() > 0.9 and np.abs(cos[cfg.aligned:]).max() < 0.7
  assert x.shape == (cfg.n_target, cfg.dim) and cfg.n_target < cfg.dim    # few-shot: underdetermined
  # the experiment's test loss ||w - w_t||^2 + noise^2 is the expected target MSE on fresh x ~ N(0, I)
  rng = np.random.default_rng(1)
  w = rng.normal(size=cfg.dim)
  xs = rng.normal(size=(50000, cfg.dim))
  mc = np.mean((xs @ w - (xs @ w_t + cfg.noise * rng.normal(size=50000))) ** 2)
  np.testing.assert_allclose(mc, np.sum((w - w_t) ** 2) + cfg.noise ** 2, rtol=0.02)


def test_concrete_merge_pieces_against_numpy():
  """[104] the toy's fine-tuned models, the masked merge and the expected-MSE test loss against float64 NumPy."""
  from experiments import concrete_subspace_merge as csm
  from jaxlib_methods.optim.concrete_subspace import masked_task_arithmetic, task_vectors
  cfg = csm.Config(dim=32, support=4, n_val=8)
  theta0, star, ft, x, y, relevant = csm.make_models(cfg, 0)
  assert relevant.sum() == 2 * cfg.support and ((star - theta0 != 0).sum(0) <= 1).all()   # disjoint supports
  np.testing.assert_allclose(y, np.einsum("tnd,td->tn", x, star), atol=5 * cfg.noise)
  taus = task_vectors(jnp.asarray(theta0), [jnp.asarray(ft[0]), jnp.asarray(ft[1])])
  mask = (relevant > 0).astype(np.float32)
  got = np.asarray(masked_task_arithmetic(jnp.asarray(theta0), taus, jnp.asarray(mask), 0.3))
  want = theta0 + 0.3 * mask / mask.mean() * ((ft[0] - theta0) + (ft[1] - theta0))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  # the expected MSE over x ~ N(0, I) by Monte Carlo (fixed seed; 5 sigma of the estimate is < 3%)
  rng = np.random.default_rng(0)
  xs = rng.normal(size=(40000, cfg.dim))
  mc = np.mean([np.mean((xs @ (want - star[i]) - cfg.noise * rng.normal(size=40000)) ** 2) for i in range(2)])
  np.testing.assert_allclose(float(csm._test_loss(jnp.asarray(want), jnp.asarray(star), cfg.noise)), mc, rtol=0.03)
