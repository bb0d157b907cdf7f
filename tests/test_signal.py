"""jaxlib_methods.signal against independent references: autodiff of the objective the MRI gradient claims to be,
the dot-product (adjoint) test, float64 NumPy transcriptions (FFTs, periodic filter banks, the FSO layer), closed
forms (Haar block averages, db2's orthonormality) and exact invariants (perfect reconstruction, Parseval, lossless
decoding of an earlier PFNR session)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import signal

RNG = np.random.default_rng(0)


def _cplx(*shape):
  return (RNG.normal(size=shape) + 1j * RNG.normal(size=shape)).astype(np.complex64)


def _np_fft2c(x, centered):
  x = np.asarray(x, np.complex128)
  if centered:
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
  return np.fft.fft2(x, norm="ortho")


def _np_ifft2c(k, centered):
  k = np.asarray(k, np.complex128)
  if centered:
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
  return np.fft.ifft2(k, norm="ortho")


# ------------------------------------------------------------------------------------------------ MRI [15]
@pytest.mark.parametrize("centered", [False, True])
def test_mri_dc_grad_is_the_gradient_and_operators_are_adjoint(centered):
  """[15]: Fᴴ M (M F x − y) == conj(jax.grad(½‖MFx − y‖²)) == ∂/∂Re + i ∂/∂Im; ⟨Ax, y⟩ = ⟨x, Aᴴy⟩; NumPy float64."""
  b, h, w = 2, 8, 6
  x, y = _cplx(b, h, w), _cplx(b, h, w)
  mask = RNG.random((h, w)) < 0.4  # a 2-D sampling pattern, broadcast over the batch
  xj, yj, mj = jnp.asarray(x), jnp.asarray(y), jnp.asarray(mask)

  def objective(z):
    r = jnp.where(mj, signal.fft2c(z, centered=centered) - yj, 0)
    return 0.5 * jnp.sum(jnp.abs(r) ** 2)

  @jax.jit  # one compilation for every quantity of the test
  def run(x, y):
    dc = lambda z: signal.mri_dc_grad(z, y, mj, centered=centered)
    g_re, g_im = jax.grad(lambda a, c: objective(a + 1j * c), argnums=(0, 1))(jnp.real(x), jnp.imag(x))
    z, res = x, []
    for _ in range(3):  # gradient DC steps with eta = 0.5
      z = z - 0.5 * dc(z)
      res.append(2 * objective(z))
    return dict(ax=signal.mri_forward(x, mj, centered=centered), ahy=signal.mri_adjoint(y, mj, centered=centered),
                g=dc(x), g_jax=jax.grad(objective)(x), g_pair=g_re + 1j * g_im,
                k_hard=signal.fft2c(signal.hard_dc(x, y, mj, centered=centered), centered=centered),
                res0=2 * objective(x), res=jnp.stack(res), res_eta1=2 * objective(x - dc(x)),
                roundtrip=signal.ifft2c(signal.fft2c(x, centered=centered), centered=centered),
                g_vmap=jax.vmap(lambda a, b: signal.mri_dc_grad(a, b, mj, centered=centered))(x, y))

  o = {k: np.asarray(v) for k, v in run(xj, yj).items()}
  # Dot-product test, in float64 NumPy inner products of the float32 outputs.
  ax, ahy = o["ax"].astype(np.complex128), o["ahy"].astype(np.complex128)
  lhs, rhs = np.vdot(y, ax), np.vdot(ahy, x)  # <Ax, y> = y^H A x ; <x, A^H y> = (A^H y)^H x
  assert abs(lhs - rhs) <= 1e-5 * abs(lhs)
  assert np.all(ax[:, ~mask] == 0)
  np.testing.assert_allclose(o["g"], np.conj(o["g_jax"]), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(o["g"], o["g_pair"], rtol=1e-5, atol=1e-5)
  ref = _np_ifft2c(mask * (_np_fft2c(x, centered) - y), centered)
  np.testing.assert_allclose(o["g"], ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(o["g_vmap"], o["g"], rtol=1e-6, atol=1e-6)  # vmap over the batch: the same
  # Hard DC: sampled k-space equals y, unsampled keeps F x (the catalog's check).
  np.testing.assert_allclose(o["k_hard"][:, mask], y[:, mask], atol=1e-5)
  np.testing.assert_allclose(o["k_hard"][:, ~mask], _np_fft2c(x, centered)[:, ~mask], atol=1e-5)
  # A gradient DC step with eta in (0, 1] lowers ||MFx - y||^2 monotonically; eta = 1 zeroes it (M idempotent).
  assert np.all(np.diff(np.concatenate([[o["res0"]], o["res"]])) < 0)
  assert o["res_eta1"] < 1e-8 * o["res0"]
  np.testing.assert_allclose(o["roundtrip"], x, atol=1e-5)


def test_noise2recon_augment_perturbs_only_sampled_kspace():
  """[174]: y + M σ (ε_re + i ε_im) with ε = normal(key, (2,) + y.shape), one σ per example."""
  y = _cplx(3, 4, 5)
  mask = RNG.random((3, 4, 5)) < 0.5
  y = np.where(mask, y, 0).astype(np.complex64)
  key = jax.random.key(3)
  sigma = np.array([0.0, 0.5, 2.0], np.float32)
  run = jax.jit(lambda y, m, s: (signal.noise2recon_augment(y, m, key, s),
                                 jax.random.normal(key, (2, 3, 4, 5), jnp.float32)))  # the documented draw
  out, eps = run(jnp.asarray(y), jnp.asarray(mask), jnp.asarray(sigma))
  out, eps = np.asarray(out), np.asarray(eps, np.float64)
  ref = y + mask * sigma[:, None, None] * (eps[0] + 1j * eps[1])
  np.testing.assert_allclose(out, ref, atol=1e-6)
  assert np.all(out[~mask] == 0) and np.all(out[0] == y[0])
  with pytest.raises(ValueError, match="sigma"):
    signal.noise2recon_augment(jnp.asarray(y), jnp.asarray(mask), key, -1.0)


def test_mri_bad_inputs_raise_clear_errors():
  x = jnp.zeros((4, 4), jnp.complex64)
  with pytest.raises(TypeError, match="mask"):
    signal.mri_forward(x, jnp.ones((4, 4)))
  with pytest.raises(ValueError, match="mask"):
    signal.mri_forward(x, jnp.ones((3, 4), bool))
  with pytest.raises(ValueError, match="x and y"):
    signal.mri_dc_grad(x, jnp.zeros((2, 4, 4), jnp.complex64), jnp.ones((4, 4), bool))
  with pytest.raises(TypeError, match="x"):
    signal.fft2c(jnp.zeros((4, 4), jnp.int32))
  with pytest.raises(ValueError, match="x"):
    signal.fft2c(jnp.zeros((4,), jnp.complex64))
  with pytest.raises(TypeError, match="centered"):
    signal.fft2c(x, centered=1)


# --------------------------------------------------------------------------------------- wavelet packets [211]
def _np_analysis_matrix(h, g, n):
  """The periodic two-channel analysis operator as an [n, n] float64 matrix, row 2 blocks: lowpass then highpass."""
  m = np.zeros((n, n))
  for i in range(n // 2):
    for k in range(len(h)):
      m[i, (2 * i + k) % n] += h[k]
      m[n // 2 + i, (2 * i + k) % n] += g[k]
  return m


def test_wavelet_filters_are_orthonormal_closed_forms():
  h, g = signal.wavelet_filters("db2")
  s3 = math.sqrt(3)
  np.testing.assert_allclose(h * 4 * math.sqrt(2), [1 + s3, 3 + s3, 3 - s3, 1 - s3], rtol=1e-15)
  assert h.sum() == pytest.approx(math.sqrt(2)) and g.sum() == pytest.approx(0, abs=1e-15)
  for n in (2, 4, 8):
    m = _np_analysis_matrix(h, g, n)
    np.testing.assert_allclose(m @ m.T, np.eye(n), atol=1e-14)
  with pytest.raises(ValueError, match="wavelet"):
    signal.wavelet_filters("db4")


@pytest.mark.parametrize("wavelet", ["haar", "db2"])
def test_wavelet_packet_transform_reconstructs_preserves_energy_and_matches_numpy(wavelet):
  """[211]: inverse(WPT(x)) = x to 1e-6 (fp32), ‖WPT x‖ = ‖x‖, level 1 = the float64 matrix transcription."""
  h, g = signal.wavelet_filters(wavelet)
  img = RNG.normal(size=(2, 3, 16, 8)).astype(np.float32)
  sig = RNG.normal(size=(3, 32)).astype(np.float32)

  @jax.jit  # one compilation for every transform of the test
  def run(img, sig):
    kw = dict(wavelet=wavelet, levels=2)
    c2, s2 = signal.wavelet_packet_transform(img, **kw), signal.wavelet_packet_transform(sig, ndim=1, **kw)
    return (c2, signal.inverse_wavelet_packet_transform(c2, **kw), s2,
            signal.inverse_wavelet_packet_transform(s2, ndim=1, **kw),
            signal.wavelet_packet_transform(img, wavelet=wavelet),
            signal.wavelet_packet_transform(sig, wavelet=wavelet, ndim=1),
            jax.vmap(lambda z: signal.wavelet_packet_transform(z, wavelet=wavelet))(img))

  c2, rec2, s2, rec_s2, c1, s1, c1_vmap = (np.asarray(a) for a in run(jnp.asarray(img), jnp.asarray(sig)))
  np.testing.assert_allclose(c1_vmap, c1, atol=1e-6)  # vmap over the leading axis: the same
  assert c2.shape == (2, 3, 16, 4, 2) and c2.dtype == np.float32 and s2.shape == (3, 4, 8)
  np.testing.assert_allclose(rec2, img, atol=1e-6)
  np.testing.assert_allclose(rec_s2, sig, atol=1e-6)
  np.testing.assert_allclose(np.sum(c2.astype(np.float64) ** 2, axis=(-3, -2, -1)),
                             np.sum(img.astype(np.float64) ** 2, axis=(-2, -1)), rtol=1e-5)
  np.testing.assert_allclose(np.sum(s2.astype(np.float64) ** 2, axis=(-2, -1)),
                             np.sum(sig.astype(np.float64) ** 2, axis=-1), rtol=1e-5)
  # Level 1 vs the NumPy matrix (1-D: [L; H] = W x; 2-D: W_H X W_W^T split into the four quadrants).
  np.testing.assert_allclose(s1.reshape(3, 32), sig.astype(np.float64) @ _np_analysis_matrix(h, g, 32).T, atol=1e-5)
  wh, ww = _np_analysis_matrix(h, g, 16), _np_analysis_matrix(h, g, 8)
  full = wh @ img.astype(np.float64) @ ww.T  # [..., 16, 8]: LL top-left, LH top-right, HL bottom-left, HH
  quads = [full[..., :8, :4], full[..., :8, 4:], full[..., 8:, :4], full[..., 8:, 4:]]
  np.testing.assert_allclose(c1, np.stack(quads, axis=-3), atol=1e-5)
  if wavelet == "haar":  # closed form: LL = (sum of the 2x2 block) / 2
    np.testing.assert_allclose(c1[..., 0, :, :], img.reshape(2, 3, 8, 2, 4, 2).sum(axis=(3, 5)) / 2, atol=1e-5)


def test_wavelet_packet_bad_inputs_raise():
  x = jnp.zeros((6, 8))
  with pytest.raises(ValueError, match="2\\*\\*levels"):
    signal.wavelet_packet_transform(x, levels=2)
  with pytest.raises(ValueError, match="levels"):
    signal.wavelet_packet_transform(x, levels=0)
  with pytest.raises(ValueError, match="ndim"):
    signal.wavelet_packet_transform(x, ndim=3)
  for nd in (1.0, 2.0):  # == 1 / == 2, but not ints: used to fail later with "slice indices must be integers"
    with pytest.raises(ValueError, match="ndim"):
      signal.wavelet_packet_transform(jnp.zeros((4, 4)), ndim=nd)
    with pytest.raises(ValueError, match="ndim"):
      signal.inverse_wavelet_packet_transform(jnp.zeros((4, 1, 1)), ndim=nd)
  with pytest.raises(TypeError, match="x"):
    signal.wavelet_packet_transform(jnp.zeros((4, 4), jnp.int32))
  with pytest.raises(ValueError, match="coeffs"):
    signal.inverse_wavelet_packet_transform(jnp.zeros((3, 2, 2)), levels=1)


# ----------------------------------------------------------------------------------------- PFNR masks [214]
def _np_fso(x, wr, wi, mr, mi):
  x = np.asarray(x, np.float64)
  b, c_in, h, w = x.shape
  _, _, c_out, m1, m2 = wr.shape
  wgt = wr * mr + 1j * (wi * mi)
  xf = np.fft.rfft2(x)
  out = np.zeros((b, c_out, h, w // 2 + 1), complex)
  for corner, rows in enumerate((slice(0, m1), slice(h - m1, h))):
    for o in range(c_out):
      out[:, o, rows, :m2] = np.sum(xf[:, :, rows, :m2] * wgt[corner][None, :, o], axis=1)
  return np.fft.irfft2(out, s=(h, w))


def test_fourier_subnet_mask_and_lossless_sessions():
  """[214]: top-c% mask (straight-through grad), FSO conv vs NumPy, and session 1 decodes bit-identically after
  session 2 trains only the weights session 1 did not use (the paper's lossless claim, here exact)."""
  scores = RNG.permutation(40).astype(np.float32).reshape(2, 4, 5)
  coef = jnp.arange(40.0).reshape(2, 4, 5)
  both = jax.jit(lambda s: (signal.fourier_subnet_mask(s, 0.3),
                            jax.grad(lambda s: jnp.sum(signal.fourier_subnet_mask(s, 0.3) * coef))(s)))
  m, grad = (np.asarray(a) for a in both(jnp.asarray(scores)))
  n_zero = round(0.7 * 39)
  assert set(np.unique(m)) <= {0.0, 1.0} and int((m == 0).sum()) == n_zero
  np.testing.assert_array_equal(m.reshape(-1), (np.argsort(np.argsort(scores.reshape(-1))) >= n_zero).astype(float))
  np.testing.assert_array_equal(grad, np.asarray(coef))  # straight-through: d mask / d scores = 1
  with pytest.raises(ValueError, match="keep"):
    signal.fourier_subnet_mask(jnp.asarray(scores), 0.0)

  shape = (2, 3, 2, 2, 3)  # [corners, C_in, C_out, m1, m2] for 8 x 8 inputs
  x = jnp.asarray(RNG.normal(size=(2, 3, 8, 8)).astype(np.float32))
  wr, wi = (jnp.asarray(RNG.normal(size=shape).astype(np.float32)) for _ in range(2))
  s1r, s1i, s2r, s2i = (jnp.asarray(RNG.normal(size=shape).astype(np.float32)) for _ in range(4))
  target = jnp.asarray(RNG.normal(size=(2, 2, 8, 8)).astype(np.float32))

  @jax.jit
  def sessions(wr, wi):
    mr1, mi1, mr2, mi2 = (signal.fourier_subnet_mask(s, 0.4) for s in (s1r, s1i, s2r, s2i))
    out1 = signal.fourier_subnet_spectral_conv(x, wr, wi, mr1, mi1)
    # Session 2: its own masks and target; weights used by session 1 are frozen (update * (1 - M_1)).
    loss = lambda a, b: jnp.mean((signal.fourier_subnet_spectral_conv(x, a, b, mr2, mi2) - target) ** 2)
    l0, (ga, gb) = jax.value_and_grad(loss, argnums=(0, 1))(wr, wi)
    wr2, wi2 = wr - 0.5 * ga * (1 - mr1), wi - 0.5 * gb * (1 - mi1)
    return out1, signal.fourier_subnet_spectral_conv(x, wr2, wi2, mr1, mi1), l0, loss(wr2, wi2), (mr1, mi1)

  out1, out1_after, l0, l1, (mr1, mi1) = sessions(wr, wi)
  np.testing.assert_allclose(np.asarray(out1), _np_fso(x, np.asarray(wr), np.asarray(wi), np.asarray(mr1),
                                                       np.asarray(mi1)), rtol=1e-4, atol=1e-4)
  assert float(l1) < float(l0)
  np.testing.assert_array_equal(np.asarray(out1_after), np.asarray(out1))
  with pytest.raises(ValueError, match="modes"):
    signal.fourier_subnet_spectral_conv(x[..., :3, :], wr, wi, mr1, mi1)
