"""MIC [46] and CAFA [24] against float64 NumPy transcriptions of the papers' equations (values and gradients)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods import losses


def _np_log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _np_mic(zs, zt, tau):
  """Per image: q = #(max_c p_t >= tau) / #pixels; loss = q * mean_pixels -log p_s[argmax p_t]; and d/dz_s."""
  b = zs.shape[0]
  pt = np.exp(_np_log_softmax(zt))
  q = (pt.max(-1) >= tau).reshape(b, -1).mean(-1)
  yhat = pt.argmax(-1)
  ls = _np_log_softmax(zs)
  ce = -np.take_along_axis(ls, yhat[..., None], -1)[..., 0]
  n_pix = ce.reshape(b, -1).shape[1]
  grad = (np.exp(ls) - np.eye(zs.shape[-1])[yhat]) * (q / n_pix).reshape((b,) + (1,) * (zs.ndim - 1))
  return q * ce.reshape(b, -1).mean(-1), q, grad


def test_mic_loss_quality_weight_and_gradient_float64():
  rng = np.random.default_rng(0)
  zs, zt = rng.normal(size=(3, 4, 5, 6)) * 2, rng.normal(size=(3, 4, 5, 6)) * 4   # [B, H, W, K]
  taus = (0.0, 0.5, 0.968)
  with jax.enable_x64(True):
    @jax.jit
    def everything(zs, zt):   # one program for every value checked below
      out = {}
      for tau in taus:
        out[f"q{tau}"] = losses.mic_quality_weight(zt, tau=tau)
        out[f"loss{tau}"], (out[f"gs{tau}"], out[f"gt{tau}"]) = jax.value_and_grad(
            lambda a, b: losses.mic_loss(a, b, tau=tau).sum(), argnums=(0, 1))(zs, zt)
        out[f"per{tau}"] = losses.mic_loss(zs, zt, tau=tau)
      out["cls"] = losses.mic_loss(zs[:, 0, 0], zt[:, 0, 0], tau=0.5)           # classification: [B, K]
      out["axis1"] = losses.mic_loss(jnp.moveaxis(zs, -1, 1), jnp.moveaxis(zt, -1, 1), tau=0.5, axis=1)
      out["vmap"] = jax.vmap(lambda a, b: losses.mic_loss(a[None], b[None], tau=0.5)[0])(zs, zt)
      return out

    out = {k: np.asarray(v) for k, v in everything(zs, zt).items()}
  for tau in taus[1:]:
    ref, q_ref, g_ref = _np_mic(zs, zt, tau)
    np.testing.assert_allclose(out[f"q{tau}"], q_ref, rtol=0, atol=1e-15)
    np.testing.assert_allclose(out[f"per{tau}"], ref, rtol=1e-12)
    np.testing.assert_allclose(out[f"gs{tau}"], g_ref, rtol=1e-10, atol=1e-14)
    assert np.all(out[f"gt{tau}"] == 0)  # the EMA teacher gets no gradient
  assert 0 < q_ref.min() and q_ref.max() < 1  # the thresholds split the pixels: the weights are not trivial
  # tau = 0: q = 1 and MIC is the pixel mean of the CE with the teacher's hard labels
  ls = _np_log_softmax(zs)
  ce = -np.take_along_axis(ls, zt.argmax(-1)[..., None], -1)[..., 0].reshape(3, -1).mean(-1)
  np.testing.assert_allclose(out["per0.0"], ce, rtol=1e-12)
  half_ref = _np_mic(zs, zt, 0.5)[0]
  np.testing.assert_allclose(out["cls"], _np_mic(zs[:, 0, 0], zt[:, 0, 0], 0.5)[0], rtol=1e-12)
  np.testing.assert_allclose(out["axis1"], half_ref, rtol=1e-12)
  np.testing.assert_allclose(out["vmap"], half_ref, rtol=1e-12)


def test_random_patch_mask_patches_and_ratio():
  key = jax.random.key(0)
  m = np.asarray(jax.jit(losses.random_patch_mask, static_argnames=("shape", "patch_size", "mask_ratio"))(
      key, shape=(64, 32, 48), patch_size=4, mask_ratio=0.7))
  assert m.dtype == np.bool_ and m.shape == (64, 32, 48)
  blocks = m.reshape(64, 8, 4, 12, 4)
  assert np.all(blocks == blocks[:, :, :1, :, :1])  # constant on every 4 x 4 patch
  # 64 * 8 * 12 = 6144 independent patches kept with probability 0.3: sd = sqrt(0.21 / 6144) = 0.0058;
  # |mean - 0.3| > 4.5 sd has probability < 1e-5
  assert abs(blocks[:, :, 0, :, 0].mean() - 0.3) < 4.5 * np.sqrt(0.21 / 6144)
  assert np.asarray(losses.random_patch_mask(key, (2, 8), patch_size=8, mask_ratio=0.0)).all()  # 1-D, nothing masked
  for bad, match in [(dict(shape=(2, 10), patch_size=4), "multiple"), (dict(shape=(2, 8), patch_size=0), "patch_size"),
                     (dict(shape=(2, 8), patch_size=4, mask_ratio=1.0), "mask_ratio"),
                     (dict(shape=(8,), patch_size=4), "shape")]:
    with pytest.raises(ValueError, match=match):
      losses.random_patch_mask(key, **bad)


@pytest.mark.slow  # where / half precision / traced-label probes: compiles many small programs
def test_mic_where_half_precision_and_bad_input():
  zs = jnp.array([[1.0, 2.0, 0.5], [jnp.nan, 0.0, 1.0]])
  zt = jnp.array([[5.0, 1.0, 0.0], [3.0, jnp.nan, 0.0]])
  where = jnp.array([True, False])
  mic = jax.jit(losses.mic_loss, static_argnames=("tau",))
  out, g = jax.value_and_grad(lambda a: mic(a, zt, where=where, tau=0.5).sum())(zs)
  assert float(out) > 0 and np.all(np.asarray(g[1]) == 0) and np.all(np.isfinite(np.asarray(g)))
  assert np.isnan(float(mic(zs, zt, tau=0.5)[1]))  # NaN propagates where not excluded
  half = mic(zs[:1].astype(jnp.bfloat16), zt[:1].astype(jnp.bfloat16), tau=0.5)
  assert half.dtype == jnp.bfloat16
  np.testing.assert_allclose(float(half[0]), _np_mic(np.asarray(zs[:1], np.float64), np.asarray(zt[:1]), 0.5)[0][0],
                             rtol=2e-2)
  with pytest.raises(ValueError, match="teacher_logits"):
    losses.mic_loss(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
  with pytest.raises(ValueError, match="tau"):
    losses.mic_loss(jnp.zeros((2, 3)), jnp.zeros((2, 3)), tau=1.5)
  with pytest.raises(ValueError, match="batch axis"):
    losses.mic_quality_weight(jnp.zeros((2, 3)), axis=0)
  with pytest.raises(TypeError, match="masked_student_logits"):
    losses.mic_loss(jnp.zeros((2, 3), jnp.int32), jnp.zeros((2, 3)))


def _np_cafa(x, y, mu, prec):
  diff = x[:, None, :] - mu[None]
  d = np.einsum("bcd,cde,bce->bc", diff, prec, diff)
  intra = d[np.arange(len(y)), y]
  loss = np.log(intra) - np.log(d.sum(-1))
  pd = np.einsum("cde,bce->bcd", prec, diff)                     # Sigma_c^-1 (x - mu_c)
  grad = 2 * pd[np.arange(len(y)), y] / intra[:, None] - 2 * pd.sum(1) / d.sum(-1)[:, None]
  return loss, grad


def test_cafa_loss_statistics_and_gradient_float64():
  rng = np.random.default_rng(1)
  k, dim = 3, 4
  src = np.concatenate([rng.normal(size=(40, dim)) @ rng.normal(size=(dim, dim)) + 3 * rng.normal(size=dim)
                        for _ in range(k)])
  ys = np.repeat(np.arange(k), 40)
  x, y = rng.normal(size=(7, dim)) * 2, np.array([0, 1, 2, 0, 1, 2, 2])
  eye = np.eye(dim)
  # the statistics in float32 under jit (float64 decompositions stay out of jit: docs, XLA:CPU), against float64 NumPy
  stats = jax.jit(losses.cafa_source_statistics, static_argnames=("num_classes", "ridge"))
  mu32, prec32 = (np.asarray(v) for v in stats(src.astype(np.float32), ys, num_classes=k, ridge=0.5))
  mu_np = np.stack([src[ys == c].mean(0) for c in range(k)])
  # Sigma_c is the biased class covariance, plus ridge * I, inverted
  prec_np = np.stack([np.linalg.inv(np.cov(src[ys == c].T, bias=True) + 0.5 * eye) for c in range(k)])
  np.testing.assert_allclose(mu32, mu_np, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(prec32, prec_np, rtol=1e-4, atol=1e-6)
  with jax.enable_x64(True):
    mu, prec = jnp.asarray(mu_np), jnp.asarray(prec_np)

    @jax.jit
    def everything(x, mu, prec):
      cafa = lambda a, m, p: losses.cafa_loss(a, y, m, p)
      g_x, g_mu = jax.grad(lambda a, m: cafa(a, m, prec).sum(), argnums=(0, 1))(x, mu)
      return cafa(x, mu, prec), g_x, g_mu, cafa(x, mu, jnp.asarray(eye))

    val, g_x, g_mu, val_eye = (np.asarray(v) for v in everything(x, mu, prec))
  ref, g_ref = _np_cafa(x, y, mu_np, prec_np)
  np.testing.assert_allclose(val, ref, rtol=1e-12)
  assert np.all(ref < 0)
  np.testing.assert_allclose(g_x, g_ref, rtol=1e-9, atol=1e-12)
  assert np.all(g_mu == 0)   # the source statistics are constants
  # shared [D, D] identity precision: log of the squared Euclidean distance over the sum of them
  d2 = ((x[:, None] - mu_np[None]) ** 2).sum(-1)
  np.testing.assert_allclose(val_eye, np.log(d2[np.arange(7), y] / d2.sum(-1)), rtol=1e-12)
  np.testing.assert_allclose(val_eye, _np_cafa(x, y, mu_np, np.stack([eye] * k))[0], rtol=1e-12)


@pytest.mark.slow  # where / half precision / traced-label probes: compiles many small programs
def test_cafa_where_half_precision_bad_labels_and_shapes():
  mu = jnp.array([[0.0, 0.0], [3.0, 0.0]])
  prec = jnp.eye(2)
  x = jnp.array([[1.0, 0.5], [jnp.nan, 0.0], [2.0, 1.0]])
  y = jnp.array([0, 1, 1])
  where = jnp.array([True, False, True])
  cafa = jax.jit(losses.cafa_loss)
  out, g = jax.value_and_grad(lambda a: cafa(a, y, mu, prec, where=where).sum())(x)
  assert np.isfinite(float(out)) and np.all(np.asarray(g[1]) == 0) and np.all(np.isfinite(np.asarray(g)))
  assert np.isnan(float(cafa(x, y, mu, prec)[1]))
  half = cafa(x[:1].astype(jnp.float16), y[:1], mu, prec)
  assert half.dtype == jnp.float16 and abs(float(half[0]) - np.log(1.25 / (1.25 + 4.25))) < 1e-2
  with pytest.raises(ValueError, match="pseudo_labels"):
    losses.cafa_loss(x[:1], jnp.array([2]), mu, prec)
  assert np.isnan(float(cafa(x[:1], jnp.array([2]), mu, prec)[0]))   # traced: a NaN row
  with pytest.raises(ValueError, match="precisions"):
    losses.cafa_loss(x, y, mu, jnp.eye(3))
  with pytest.raises(TypeError, match="pseudo_labels"):
    losses.cafa_loss(x, y.astype(jnp.float32), mu, prec)
  with pytest.raises(ValueError, match="ridge"):
    losses.cafa_source_statistics(x, y, 2, ridge=-1.0)


def test_cafa_rejects_non_spd_precisions_eagerly():
  """[24] a non-symmetric or indefinite precision gave a negative 'distance' and a NaN or meaningless log ratio."""
  mu = jnp.array([[0.0, 0.0], [3.0, 0.0]])
  x, y = jnp.array([[1.0, 0.5]]), jnp.array([0])
  with pytest.raises(ValueError, match="positive definite"):
    losses.cafa_loss(x, y, mu, jnp.diag(jnp.array([1.0, -1.0])))
  with pytest.raises(ValueError, match="positive definite"):
    losses.cafa_loss(x, y, mu, jnp.stack([jnp.eye(2), jnp.zeros((2, 2))]))
  with pytest.raises(ValueError, match="symmetric"):
    losses.cafa_loss(x, y, mu, jnp.array([[1.0, 0.5], [0.0, 1.0]]))
  with pytest.raises(ValueError, match="finite"):
    losses.cafa_loss(x, y, mu, jnp.full((2, 2), jnp.nan))
  assert np.isfinite(float(losses.cafa_loss(x, y, mu, 2.0 * jnp.eye(2))[0]))
