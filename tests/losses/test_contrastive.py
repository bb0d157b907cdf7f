"""iSogCLR / MoCHi / m^2-Mix / MCL vs NumPy transcriptions, exact special cases (optax NT-Xent) and LibAUC parity."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods.losses import contrastive as cl


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _np_logsumexp(a, axis):
  m = a.max(axis=axis, keepdims=True)
  return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


# ------------------------------------------------------------------------------------------------ iSogCLR

def test_robust_contrastive_loss_matches_numpy_eq6():
  rng = np.random.default_rng(0)
  sp, sn = rng.uniform(-1, 1, size=5), rng.uniform(-1, 1, size=(5, 7))
  tau = rng.uniform(0.05, 0.7, size=5)
  rho = 0.3
  ref = np.array([tau[i] * np.log(np.mean(np.exp((sn[i] - sp[i]) / tau[i]))) + tau[i] * rho for i in range(5)])
  got = cl.robust_contrastive_loss(jnp.asarray(sp, jnp.float32), jnp.asarray(sn, jnp.float32),
                                   jnp.asarray(tau, jnp.float32), rho)
  np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-5, atol=1e-6)


def test_robust_contrastive_equal_temperatures_is_ntxent():
  # With tau_i = tau: log(1 + M exp(L_i / tau - rho)) = -log(e^{s+/tau} / (e^{s+/tau} + sum_neg e^{s/tau})),
  # the NT-Xent term; optax.losses.ntxent averages it over the 2B anchors.
  rng = np.random.default_rng(1)
  b, d, tau, rho = 6, 5, 0.2, 0.4
  z = rng.normal(size=(2 * b, d)).astype(np.float32)
  v = _unit(z)
  s = v @ v.T
  m = 2 * b - 2
  pos_idx = np.concatenate([np.arange(b) + b, np.arange(b)])
  sp = s[np.arange(2 * b), pos_idx]
  neg = np.array([[s[a, c] for c in range(2 * b) if c != a and c != pos_idx[a]] for a in range(2 * b)])
  labels = jnp.concatenate([jnp.arange(b), jnp.arange(b)])

  @jax.jit  # one program for both sides
  def run(sp, neg, z, labels):
    robust = cl.robust_contrastive_loss(sp, neg, tau, rho)
    return jnp.mean(jnp.log1p(m * jnp.exp(robust / tau - rho))), optax.losses.ntxent(z, labels, temperature=tau)

  recovered, ref = run(jnp.asarray(sp, jnp.float32), jnp.asarray(neg, jnp.float32), jnp.asarray(z), labels)
  assert float(recovered) == pytest.approx(float(ref), rel=1e-5)


def _views(seed, b=6, d=8):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(b, d)).astype(np.float32), rng.normal(size=(b, d)).astype(np.float32)


def test_isogclr_gradient_equals_exact_objective_gradient_on_first_visit():
  # On the first visit u = g exactly, so the surrogate's gradient is the exact gradient of
  # sum_views tau_i log mean_j exp((s_ij - s_i+) / tau_i) w.r.t. the embeddings.
  z1, z2 = _views(2)
  b = z1.shape[0]
  state = cl.isogclr_init(20, tau_init=0.15)
  index = jnp.arange(3, 3 + b)

  def exact(a1, a2):
    h1, h2 = a1 / jnp.linalg.norm(a1, axis=1, keepdims=True), a2 / jnp.linalg.norm(a2, axis=1, keepdims=True)
    total = 0.0
    for x, y in ((h1, h2), (h2, h1)):
      sim = jnp.concatenate([x @ y.T, x @ x.T], axis=1)
      mask = ~np.concatenate([np.eye(b, dtype=bool)] * 2, axis=1)
      neg = sim[mask].reshape(b, 2 * b - 2)
      total = total + jnp.sum(cl.robust_contrastive_loss(jnp.diagonal(sim[:, :b]), neg, 0.15, 0.0))
    return total

  g_sur = jax.jit(jax.grad(lambda a1, a2: jnp.sum(cl.isogclr_loss(a1, a2, index, state)[0]), argnums=(0, 1)))(z1, z2)
  g_ex = jax.jit(jax.grad(exact, argnums=(0, 1)))(jnp.asarray(z1), jnp.asarray(z2))
  for a, e in zip(g_sur, g_ex):
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=2e-4, atol=1e-6)


def test_isogclr_temperature_gradient_is_rho_minus_kl_to_uniform():
  # d/dtau [tau log mean_j exp(s_j / tau) + tau rho] = rho - KL(p || uniform), p_j proportional to exp(s_j / tau):
  # with u = g exactly (first visit) and beta = 1, the stored momentum is the mean over the two views of that value.
  z1, z2 = _views(12)
  b = z1.shape[0]
  rho, tau = 0.3, 0.2
  state = cl.isogclr_init(b, tau_init=tau)
  _, new = jax.jit(lambda z1, z2, s: cl.isogclr_loss(z1, z2, jnp.arange(b), s, rho=rho, beta=1.0, eta=0.0))(
      z1, z2, state)
  h1, h2 = _unit(z1), _unit(z2)
  mask = ~np.concatenate([np.eye(b, dtype=bool)] * 2, axis=1)
  ref = np.zeros(b)
  for x, y in ((h1, h2), (h2, h1)):
    sim = np.concatenate([x @ y.T, x @ x.T], 1)
    for i in range(b):
      sn = sim[i][mask[i]] / tau
      p = np.exp(sn - sn.max()); p /= p.sum()
      ref[i] += (rho - np.sum(p * np.log(p * len(sn)))) / 2
  np.testing.assert_allclose(np.asarray(new.grad_tau), ref, rtol=1e-4, atol=1e-5)


def test_isogclr_state_updates_only_batch_and_respects_bounds():
  z1, z2 = _views(3)
  state = cl.isogclr_init(30)
  index = jnp.array([1, 5, 7, 11, 20, 29])
  _, new = jax.jit(lambda a, b_, s: cl.isogclr_loss(a, b_, index, s, eta=10.0))(z1, z2, state)
  untouched = np.setdiff1d(np.arange(30), np.asarray(index))
  assert np.all(np.asarray(new.u)[untouched] == 0) and np.all(np.asarray(new.u)[np.asarray(index)] > 0)
  tau = np.asarray(new.tau)[np.asarray(index)]
  assert np.all((tau >= 0.05 - 1e-7) & (tau <= 0.7 + 1e-7))
  assert int(new.count) == 1


def _np_sogclr_dro_step(z1, z2, index, s, tau_all, u_grad, first, *, gamma, rho, eta, beta_u, tau_min, tau_max,
                        clip):
  """Float64 NumPy transcription of the authors' SogCLR_DRO_Loss.forward (zhqiu/contrastive-learning-iSogCLR,
  unimodal_exps/losses.py): per-anchor losses of both views and the new (s, tau, u) of the batch."""
  f = np.concatenate([_unit(z1), _unit(z2)])                    # [2B, d]: view 1 rows, then view 2 rows
  b = z1.shape[0]
  sim = f @ f.T
  mask = 1.0 - np.tile(np.eye(b), (2, 2))                       # drops i itself and its positive
  num_neg = 2 * b - 2
  pos = np.concatenate([np.diagonal(sim, b), np.diagonal(sim, -b)])
  tau = np.tile(tau_all[index], 2)
  e = np.exp(sim / tau[:, None]) * mask
  g = e.sum(1) / num_neg
  s1 = g[:b] if first else (1 - gamma) * s[index] + gamma * g[:b]
  s2 = g[b:] if first else (1 - gamma) * s[index] + gamma * g[b:]
  w1, w2 = e[:b] / s1[:, None], e[b:] / s2[:, None]
  loss = (w1 * sim[:b]).sum(1) / num_neg - pos[:b] + (w2 * sim[b:]).sum(1) / num_neg - pos[b:]
  gt1 = np.log(s1) + rho - (w1 * sim[:b] / tau[:b, None]).sum(1) / num_neg
  gt2 = np.log(s2) + rho - (w2 * sim[b:] / tau[b:, None]).sum(1) / num_neg
  grad = np.clip((gt1 + gt2) / 2, -clip, clip)
  u_new = (1 - beta_u) * u_grad[index] + beta_u * grad
  return loss, (s1 + s2) / 2, np.clip(tau_all[index] - eta * u_new, tau_min, tau_max), u_new


def test_isogclr_grad_clip_matches_authors_sogclr_dro_transcription():
  # The authors' unimodal settings (README: gamma 0.8, rho 0.4, beta_u 0.5, eta 0.03, tau_init 0.1; tau in
  # [0.05, 1.0], |dL/dtau| clipped at 3); rho = 4 and eta = 0.3 here make the clip and the bounds bind.
  # Run in float64: over chained steps exp(sim / tau) at tau = 0.05 amplifies float32 rounding ~20x per step, so
  # a float32 comparison of the state after step 3 depends on the CPU's exp (1.3e-4 relative on an AMD EPYC, under
  # 1e-4 on others); in float64 the update matches the transcription to ~1e-14.
  n, b, d = 12, 5, 6
  kw = dict(gamma=0.8, rho=4.0, eta=0.3, beta=0.5, tau_min=0.05, tau_max=1.0)
  index = np.array([0, 2, 5, 7, 11])
  s, tau, ug = np.zeros(n), np.full(n, 0.1), np.zeros(n)
  clipped = 0
  with jax.enable_x64(True):
    state = cl.isogclr_init(n, tau_init=0.1, dtype=jnp.float64)
    step = jax.jit(lambda a1, a2, st: cl.isogclr_loss(a1, a2, jnp.asarray(index), st, grad_clip=3.0, **kw))
    for t in range(3):
      z1, z2 = _views(40 + t, b, d)
      loss, state = step(jnp.asarray(z1, jnp.float64), jnp.asarray(z2, jnp.float64), state)
      assert state.u.dtype == state.tau.dtype == state.grad_tau.dtype == jnp.float64
      ref_loss, s_i, tau_i, ug_i = _np_sogclr_dro_step(z1, z2, index, s, tau, ug, t == 0, gamma=0.8, rho=4.0,
                                                       eta=0.3, beta_u=0.5, tau_min=0.05, tau_max=1.0, clip=3.0)
      clipped += int(np.sum(np.abs((ug_i - 0.5 * ug[index]) / 0.5) >= 3.0 - 1e-12))
      s[index], tau[index], ug[index] = s_i, tau_i, ug_i
      np.testing.assert_allclose(np.asarray(loss), ref_loss, rtol=1e-10, atol=1e-12)
      np.testing.assert_allclose(np.asarray(state.u), s, rtol=1e-10)
      np.testing.assert_allclose(np.asarray(state.grad_tau), ug, rtol=1e-10, atol=1e-12)
      np.testing.assert_allclose(np.asarray(state.tau), tau, rtol=1e-10, atol=1e-12)
  assert clipped > 0   # the clip was exercised
  with pytest.raises(ValueError, match="grad_clip"):
    cl.isogclr_loss(jnp.asarray(z1), jnp.asarray(z2), jnp.asarray(index), state, grad_clip=0.0)


def _load_libauc_contrastive():
  # Load libauc/losses/contrastive.py alone (it imports only torch and numpy): the package __init__ pulls in
  # scikit-learn, which is not a dependency of this project.
  import importlib.util
  import pathlib
  spec = importlib.util.find_spec("libauc")
  if spec is None or spec.origin is None:
    pytest.skip("parity needs libauc")
  path = pathlib.Path(spec.origin).parent / "losses" / "contrastive.py"
  mod_spec = importlib.util.spec_from_file_location("_libauc_contrastive", path)
  mod = importlib.util.module_from_spec(mod_spec)
  mod_spec.loader.exec_module(mod)
  return mod


@pytest.mark.parity
def test_isogclr_parity_with_libauc_gcloss_v1():
  torch = pytest.importorskip("torch", reason="parity with LibAUC needs torch")
  contrastive = _load_libauc_contrastive()
  n, b, d = 16, 6, 8
  kw = dict(gamma=0.9, rho=0.3, eta=0.05, beta=0.9, tau_min=0.05, tau_max=0.7)
  ref = contrastive.GCLoss_v1(N=n, tau=0.1, gamma=kw["gamma"], device=torch.device("cpu"), enable_isogclr=True,
                              rho=kw["rho"], eta=kw["eta"], beta=kw["beta"], tau_min=kw["tau_min"],
                              tau_max=kw["tau_max"])
  state = cl.isogclr_init(n, tau_init=0.1)
  index = np.array([0, 3, 4, 9, 10, 15])
  for step in range(3):
    z1, z2 = _views(10 + step, b, d)
    t1 = torch.tensor(z1, dtype=torch.float32, requires_grad=True)
    t2 = torch.tensor(z2, dtype=torch.float32, requires_grad=True)
    loss_ref = ref(t1, t2, torch.tensor(index))
    loss_ref.backward()
    (loss, state), grads = jax.value_and_grad(
        lambda a1, a2, s: (jnp.mean(cl.isogclr_loss(a1, a2, jnp.asarray(index), s, **kw)[0]),
                           cl.isogclr_loss(a1, a2, jnp.asarray(index), s, **kw)[1]), argnums=(0, 1), has_aux=True)(
                               jnp.asarray(z1), jnp.asarray(z2), state)
    assert float(loss) == pytest.approx(float(loss_ref.detach()), rel=1e-4, abs=1e-5)
    np.testing.assert_allclose(np.asarray(grads[0]), t1.grad.numpy(), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(np.asarray(grads[1]), t2.grad.numpy(), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(np.asarray(state.u), ref.u.detach().numpy()[:, 0], rtol=1e-4)
    np.testing.assert_allclose(np.asarray(state.tau), ref.learnable_tau.detach().numpy()[:, 0], rtol=1e-4)


# ------------------------------------------------------------------------------------------------ MoCHi

def test_mochi_infonce_matches_numpy_and_synthetics_increase_loss():
  rng = np.random.default_rng(4)
  b, d, k = 4, 6, 32
  q, kk, queue = rng.normal(size=(b, d)), rng.normal(size=(b, d)), rng.normal(size=(k, d))
  tau = 0.2
  qn, kn, nn = _unit(q), _unit(kk), _unit(queue)
  logits = np.concatenate([(qn * kn).sum(1, keepdims=True), qn @ nn.T], 1) / tau
  ref = -(logits[:, 0] - _np_logsumexp(logits, 1))
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  infonce = jax.jit(cl.mochi_infonce, static_argnames="temperature")
  negatives = jax.jit(cl.mochi_negatives, static_argnames=("num_hard", "num_mix", "num_query_mix"))
  base = infonce(f32(q), f32(kk), f32(queue), temperature=tau)
  np.testing.assert_allclose(np.asarray(base), ref, rtol=1e-5)
  syn = negatives(jax.random.key(0), f32(q), f32(queue), num_hard=8, num_mix=16, num_query_mix=4)
  assert syn.shape == (b, 20, d)
  np.testing.assert_allclose(np.linalg.norm(np.asarray(syn), axis=-1), 1.0, rtol=1e-5)
  with_syn = infonce(f32(q), f32(kk), f32(queue), syn, temperature=tau)
  assert np.all(np.asarray(with_syn) > np.asarray(base))
  # Synthetic negatives are harder than the queue on average.
  assert float(jnp.einsum("bd,bsd->bs", f32(qn), syn).mean()) > float((qn @ nn.T).mean())
  # Key-deterministic, and no gradient flows through them.
  syn2 = negatives(jax.random.key(0), f32(q), f32(queue), num_hard=8, num_mix=16, num_query_mix=4)
  np.testing.assert_array_equal(np.asarray(syn), np.asarray(syn2))
  g = jax.jit(jax.grad(lambda a: cl.mochi_negatives(jax.random.key(0), a, f32(queue), num_hard=8, num_mix=4,
                                                    num_query_mix=4).sum()))(f32(q))
  assert np.all(np.asarray(g) == 0)


def test_mochi_negatives_structure_with_single_hardest():
  rng = np.random.default_rng(5)
  q, queue = rng.normal(size=(3, 5)), rng.normal(size=(10, 5))
  qn, nn = _unit(q), _unit(queue)
  hardest = nn[np.argmax(qn @ nn.T, axis=1)]
  syn = np.asarray(jax.jit(lambda k, q, queue: cl.mochi_negatives(k, q, queue, num_hard=1, num_mix=5, num_query_mix=5))(
      jax.random.key(1), jnp.asarray(q, jnp.float32), jnp.asarray(queue, jnp.float32)))
  np.testing.assert_allclose(syn[:, :5], np.repeat(hardest[:, None], 5, 1), atol=1e-5)  # mix of n* with itself
  for i in range(3):
    for h in syn[i, 5:]:
      # h' = normalise(beta q + (1 - beta) n*), beta < 0.5: on the q-n* arc, closer to n*.
      coef, *_ = np.linalg.lstsq(np.stack([qn[i], hardest[i]], 1), h, rcond=None)
      np.testing.assert_allclose(np.stack([qn[i], hardest[i]], 1) @ coef, h, atol=1e-5)
      assert 0 <= coef[0] / (coef[0] + coef[1]) < 0.5


# ------------------------------------------------------------------------------------------------ m^2-Mix

def _np_sph_inter(a, b, s):  # official sph_inter
  theta = np.arccos((a * b).sum(1))[:, None]
  return np.sin(s * theta) / np.sin(theta) * a + np.sin((1 - s) * theta) / np.sin(theta) * b


def test_geodesic_mixup_matches_official_formula_and_is_on_sphere():
  rng = np.random.default_rng(6)
  a, b = _unit(rng.normal(size=(5, 4))), _unit(rng.normal(size=(5, 4)))
  lams = (0.0, 0.3, 0.5, 1.0)
  same = jnp.asarray(a, jnp.float32)

  @jax.jit  # one program for every value and the gradient (lam stays a concrete Python float in each call)
  def run(a, b, same):
    return ([cl.geodesic_mixup(a, b, lam) for lam in lams], cl.geodesic_mixup(same, same, 0.3),
            jax.grad(lambda x: cl.geodesic_mixup(x, x, 0.3).sum())(same))

  outs, same_out, g = run(jnp.asarray(a), jnp.asarray(b), same)
  for lam, got in zip(lams, outs):
    got = np.asarray(got)
    np.testing.assert_allclose(got, _np_sph_inter(a, b, lam), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(outs[3]), a, atol=1e-6)  # lam = 1.0
  np.testing.assert_allclose(np.asarray(outs[0]), b, atol=1e-6)  # lam = 0.0
  # theta = 0 (identical inputs): the official formula is 0/0; ours returns the point, with finite gradients.
  np.testing.assert_allclose(np.asarray(same_out), a, atol=1e-6)
  assert np.all(np.isfinite(np.asarray(g)))


def test_m2mix_loss_matches_numpy_transcription_of_official_code():
  rng = np.random.default_rng(7)
  b, d, tau, lam = 5, 6, 0.05, 0.37
  img, txt = rng.normal(size=(b, d)), rng.normal(size=(b, d))
  i_n, t_n = _unit(img), _unit(txt)
  neg = _np_sph_inter(i_n, t_n, lam)
  eye = np.eye(b)
  li = (i_n @ t_n.T) * eye + (i_n @ neg.T) * (1 - eye)
  lt = (t_n @ i_n.T) * eye + (t_n @ neg.T) * (1 - eye)
  ce = lambda lg: -(np.diag(lg) - _np_logsumexp(lg, 1))
  ref = ce(li / tau) + ce(lt / tau)
  loss = lambda x: cl.m2mix_loss(x, jnp.asarray(txt, jnp.float32), lam, tau)
  got, g = jax.jit(lambda x: (loss(x), jax.grad(lambda x: loss(x).sum())(x)))(jnp.asarray(img, jnp.float32))
  np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-4, atol=2e-6)
  assert np.all(np.isfinite(np.asarray(g)))


def test_alignment_and_uniformity_match_numpy():
  rng = np.random.default_rng(8)
  x, y = _unit(rng.normal(size=(6, 3))), _unit(rng.normal(size=(6, 3)))
  align, unif = jax.jit(lambda x, y: (cl.alignment_loss(x, y), cl.uniformity_loss(x)))(jnp.asarray(x), jnp.asarray(y))
  np.testing.assert_allclose(np.asarray(align), ((x - y) ** 2).sum(1), rtol=1e-5)
  d2 = [((x[i] - x[j]) ** 2).sum() for i in range(6) for j in range(i + 1, 6)]
  assert float(unif) == pytest.approx(np.log(np.mean(np.exp(-2 * np.array(d2)))), rel=1e-5)


# ------------------------------------------------------------------------------------------------ MCL

def test_mcl_single_cluster_equals_optax_ntxent():
  z1, z2 = _views(9)
  b = z1.shape[0]
  labels = jnp.concatenate([jnp.arange(b), jnp.arange(b)])
  got, ref = jax.jit(lambda z1, z2: (cl.mcl_info_nce(z1, z2, jnp.zeros(b, jnp.int32), temperature=0.3),  # one program
                                     optax.losses.ntxent(jnp.concatenate([z1, z2]), labels, temperature=0.3)))(z1, z2)
  assert float(jnp.mean(got)) == pytest.approx(float(ref), rel=1e-5)


def test_mcl_matches_numpy_with_clusters_and_singletons_give_zero():
  z1, z2 = _views(10)
  b = z1.shape[0]
  cid = np.array([0, 1, 0, 1, 1, 2])
  v = _unit(np.concatenate([z1, z2]))
  c2 = np.concatenate([cid, cid])
  tau = 0.5
  s = v @ v.T / tau
  per = []
  for a in range(2 * b):
    p = (a + b) % (2 * b)
    denom = [s[a, c] for c in range(2 * b) if c != a and c2[c] == c2[a]]
    per.append(-(s[a, p] - np.log(np.sum(np.exp(denom)))))
  per = np.array(per)
  mcl = jax.jit(lambda z1, z2, cid: cl.mcl_info_nce(z1, z2, cid, tau))     # one program for both cluster labellings
  got = mcl(jnp.asarray(z1), jnp.asarray(z2), jnp.asarray(cid))
  np.testing.assert_allclose(np.asarray(got), (per[:b] + per[b:]) / 2, rtol=1e-5, atol=1e-6)
  # Each pair its own cluster: the only candidate is the positive, so the loss is exactly 0.
  alone = mcl(jnp.asarray(z1), jnp.asarray(z2), jnp.arange(b))
  np.testing.assert_allclose(np.asarray(alone), 0.0, atol=1e-6)
  g = jax.jit(jax.grad(lambda a: cl.mcl_info_nce(a, jnp.asarray(z2), jnp.asarray(cid), tau).sum()))(jnp.asarray(z1))
  assert np.all(np.isfinite(np.asarray(g)))


def test_low_precision_and_extreme_similarity_stay_finite():
  z1, z2 = _views(11)
  bf = lambda a: jnp.asarray(a, jnp.bfloat16)
  mcl, m2mix, r = jax.jit(lambda a, b, sp, sn: (  # one program
      cl.mcl_info_nce(a, b, jnp.zeros(6, jnp.int32), 0.01), cl.m2mix_loss(a, b, 0.5, 0.01),
      cl.robust_contrastive_loss(sp, sn, 1e-3, 0.0)))(bf(z1), bf(z2), jnp.array([1.0]), jnp.array([[-1.0, 1.0]]))
  assert np.all(np.isfinite(np.asarray(mcl, np.float32)))
  assert np.all(np.isfinite(np.asarray(m2mix, np.float32)))
  # Tiny temperature: logsumexp form does not overflow.
  assert float(r[0]) == pytest.approx(-1e-3 * np.log(2), rel=1e-3)


def test_bad_inputs_raise():
  z = jnp.zeros((4, 3))
  with pytest.raises(ValueError, match="tau"):
    cl.robust_contrastive_loss(jnp.zeros(4), jnp.zeros((4, 2)), 0.0, 0.1)
  with pytest.raises(ValueError, match="sim_pos"):
    cl.robust_contrastive_loss(jnp.zeros(3), jnp.zeros((4, 2)), 0.1, 0.1)
  with pytest.raises(ValueError, match="index"):
    cl.isogclr_loss(z, z, jnp.zeros(3, jnp.int32), cl.isogclr_init(10))
  with pytest.raises(ValueError, match="tau_min"):
    cl.isogclr_loss(z, z, jnp.arange(4), cl.isogclr_init(10), tau_min=0.5, tau_max=0.1)
  with pytest.raises(ValueError, match="gamma"):
    cl.isogclr_loss(z, z, jnp.arange(4), cl.isogclr_init(10), gamma=0.0)
  with pytest.raises(ValueError, match="num_hard"):
    cl.mochi_negatives(jax.random.key(0), z, jnp.zeros((5, 3)), num_hard=6)
  with pytest.raises(ValueError, match="beta_max"):
    cl.mochi_negatives(jax.random.key(0), z, jnp.zeros((5, 3)), num_hard=2, beta_max=0.7)
  with pytest.raises(ValueError, match="lam"):
    cl.geodesic_mixup(z, z, 1.5)
  with pytest.raises(ValueError, match="temperature"):
    cl.m2mix_loss(z, z, 0.5, temperature=-1.0)
  with pytest.raises(TypeError, match="cluster_ids must be an integer"):
    cl.mcl_info_nce(z, z, jnp.zeros(4))
  with pytest.raises(ValueError, match="shape and dtype"):
    cl.mcl_info_nce(z, jnp.zeros((4, 3), jnp.bfloat16), jnp.zeros(4, jnp.int32))


def test_half_precision_identical_pairs_and_tiny_temperature_match_float32():
  # Regression: geodesic_mixup / m2mix_loss ran in the input dtype, where 1 - 1e-6 rounds to 1, so an identical
  # (or nearly identical) image-text pair gave sin(0) / sin(0) = NaN in bfloat16/float16; mochi_infonce and
  # mcl_info_nce divided float16 logits by tau, overflowing to inf/NaN for tau = 1e-5 although the loss fits float16.
  rng = np.random.default_rng(3)
  a = rng.normal(size=(4, 8)).astype(np.float32)
  a /= np.linalg.norm(a, axis=-1, keepdims=True)
  q, queue = (rng.normal(size=s).astype(np.float32) for s in ((3, 8), (5, 8)))
  k = q + np.float32(1e-3) * rng.normal(size=q.shape).astype(np.float32)  # a well-aligned positive: loss near 0
  for dt in (jnp.bfloat16, jnp.float16):
    h = jnp.asarray(a, dt)
    mixed = cl.geodesic_mixup(h, h, 0.3)
    assert mixed.dtype == dt
    np.testing.assert_allclose(np.asarray(mixed, np.float32), np.asarray(jnp.asarray(a, dt), np.float32), atol=1e-2)
    m2 = cl.m2mix_loss(h, h, 0.3)
    assert m2.dtype == dt and np.all(np.isfinite(np.asarray(m2, np.float32)))
  tau = 1e-5
  want_mochi = np.asarray(cl.mochi_infonce(jnp.asarray(q), jnp.asarray(k), jnp.asarray(queue), temperature=tau))
  want_mcl = np.asarray(cl.mcl_info_nce(jnp.asarray(q), jnp.asarray(k), jnp.array([0, 0, 1]), tau))
  assert np.all(np.isfinite(want_mochi)) and np.all(want_mochi < 1e3) and np.all(want_mcl < 1e3)
  h = lambda x: jnp.asarray(x, jnp.float16)
  got_mochi = cl.mochi_infonce(h(q), h(k), h(queue), temperature=tau)
  got_mcl = cl.mcl_info_nce(h(q), h(k), jnp.array([0, 0, 1]), tau)
  assert got_mochi.dtype == got_mcl.dtype == jnp.float16
  # float16 rounds the inputs themselves (about 5e-4 relative, i.e. ~50 in s / tau ~ 1e5): only finiteness and a
  # loose agreement are meaningful.
  assert np.all(np.isfinite(np.asarray(got_mochi, np.float32))) and np.all(np.isfinite(np.asarray(got_mcl, np.float32)))
  np.testing.assert_allclose(np.asarray(got_mochi, np.float32), want_mochi, atol=200)
  np.testing.assert_allclose(np.asarray(got_mcl, np.float32), want_mcl, atol=200)


def test_alignment_loss_gradient_finite_at_identical_pair():
  # Regression: ||x - y||^2 ** (alpha / 2) has derivative alpha/2 * 0 ** (alpha/2 - 1) = inf at x = y for alpha < 2,
  # so one already-aligned pair turned the whole gradient into NaN.
  x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  y = jnp.array([[1.0, 0.0], [1.0, 0.0]])
  for alpha in (0.5, 1.0, 2.0, 3.0):
    np.testing.assert_allclose(cl.alignment_loss(x, y, alpha), [0.0, 2.0 ** (alpha / 2)], rtol=1e-6)
    g = jax.jit(jax.grad(lambda a: cl.alignment_loss(a, y, alpha).sum()))(x)
    d = np.array([-1.0, 1.0])
    np.testing.assert_allclose(np.asarray(g), [[0.0, 0.0], alpha * 2.0 ** (alpha / 2 - 1) * d], rtol=1e-5, atol=1e-7)

  # Regression (2026-12-04): the x = y guard (sq > 0) sent a NaN distance to the 0 branch: a NaN row gave 0.
  xn = x.at[1, 0].set(jnp.nan)
  out = np.asarray(cl.alignment_loss(xn, y, 1.0))
  assert out[0] == 0.0 and np.isnan(out[1])
  assert np.isnan(np.asarray(jax.jit(jax.grad(lambda a: cl.alignment_loss(a, y, 1.0).sum()))(xn))[1, 0])


def test_isogclr_rejects_temperatures_whose_exp_overflows_the_state():
  """At tau = 0.005 in float32, u = mean exp(s / tau) reaches exp(200) = inf: the loss and the stored temperatures
  became NaN for good. Such temperatures are now a ValueError; float64 embeddings and state allow them."""
  rng = np.random.default_rng(0)
  z1 = jnp.asarray(rng.normal(size=(4, 8)), jnp.float32)
  z2 = z1 + 0.01 * jnp.asarray(rng.normal(size=(4, 8)), jnp.float32)
  idx = jnp.arange(4)
  with pytest.raises(ValueError, match="tau_init=0.005 is too small for float32"):
    cl.isogclr_init(4, tau_init=0.005)
  with pytest.raises(ValueError, match="tau_min=0.005 is too small for float32"):
    cl.isogclr_loss(z1, z2, idx, cl.isogclr_init(4, tau_init=0.1), tau_min=0.005)
  loss, st = cl.isogclr_loss(z1, z2, idx, cl.isogclr_init(4, tau_init=0.02), tau_min=0.02)
  assert np.all(np.isfinite(np.asarray(loss))) and np.all(np.isfinite(np.asarray(st.u)))
  with jax.enable_x64(True):
    z64 = jnp.asarray(np.asarray(z1), jnp.float64), jnp.asarray(np.asarray(z2), jnp.float64)
    loss, st = cl.isogclr_loss(*z64, idx, cl.isogclr_init(4, tau_init=0.005, dtype=jnp.float64), tau_min=0.005)
    assert np.all(np.isfinite(np.asarray(loss))) and np.all(np.isfinite(np.asarray(st.tau)))
