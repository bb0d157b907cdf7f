"""Non-contrastive self-supervised objectives: Barlow Twins with the mixed-sample regulariser, the Eckhart-Young
(EY) objectives for CCA / PLS / SSL, and the coding-rate objective of MLC.

Papers:
  [91]  Wele Gedara Chaminda Bandara, Celso M. De Melo, Vishal M. Patel, "Guarding Barlow Twins Against Overfitting
        with Mixed Samples", arXiv:2312.02151, 2023 (Sec. 3; official code wgcban/mix-bt `main.py`, whose
        standardisation (unbiased std) and loss scale we follow). Barlow Twins: Zbontar et al., ICML 2021,
        arXiv:2103.03230, Eq. (1).
  [120] James Chapman, Lennie Wells, Ana Lawry Aguila, "Unconstrained Stochastic CCA: Unifying Multiview and
        Self-Supervised Learning", ICLR 2024, arXiv:2310.01012 (Sec. 3: EY loss for the generalised eigenvalue
        problem A u = lambda B u, L(U) = tr(-2 U^T A U + U^T B U U^T B U), unbiased with B from two independent
        batches; official code jameschapman19/SSL-EY `ssley.py`).
  [96]  Tianjiao Ding, Shengbang Tong, Kwan Ho Ryan Chan, Xili Dai, Yi Ma, Benjamin D. Haeffele, "Unsupervised
        Manifold Linearizing and Clustering", ICCV 2023, arXiv:2301.01805 (Sec. 3, Eq. (4): MCR^2 with a doubly
        stochastic membership Gamma from a Sinkhorn projection of the cluster-head kernel; no 1/2 on the rates).

These are batch-level objectives: each returns a scalar for a minibatch (not per example).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from jaxlib_methods import validation
from jaxlib_methods.validation import check_same_shape_and_dtype, check_nonnegative, check_positive


def _check_2d(name: str, z: jax.Array, min_rows: int = 2) -> jax.Array:
  z = validation.check_floating(z, name)
  if z.ndim != 2 or z.shape[0] < min_rows:
    raise ValueError(f"{name} must be [n, d] with n >= {min_rows}, got {name}.shape={z.shape}")
  return z


def _up(*zs: jax.Array):
  """Half-precision inputs are computed in float32 (covariances and log-determinants of bfloat16 are too coarse)."""
  out = tuple(z.astype(validation.compute_dtype_for(z.dtype)) for z in zs)
  return out if len(out) > 1 else out[0]


_check_same = check_same_shape_and_dtype


def standardize(z: jax.Array, *, ddof: int = 0, eps: float = 0.0) -> jax.Array:
  """Per-feature batch standardisation (z - mean) / sqrt(var + eps); z: [n, d] floating, n >= 2. ddof=0 is
  BatchNorm's biased variance (Barlow Twins, Zbontar et al. 2021, arXiv:2103.03230), ddof=1 torch's `std()` (mix-bt
  code, Bandara et al. 2023, arXiv:2312.02151). Returns z's shape and dtype."""
  z = _check_2d("z", z)
  if isinstance(ddof, bool) or ddof not in (0, 1):
    raise ValueError(f"ddof must be 0 or 1, got {ddof=}")
  check_nonnegative(eps, "eps")
  dtype = z.dtype
  z = _up(z)
  mu = jnp.mean(z, axis=0, keepdims=True)
  var = jnp.sum(jnp.square(z - mu), axis=0, keepdims=True) / (z.shape[0] - ddof)
  return ((z - mu) / jnp.sqrt(var + eps)).astype(dtype)


# ----------------------------------------------------------------------------------------------------------------
# [91] Barlow Twins and Mixed Barlow Twins
# ----------------------------------------------------------------------------------------------------------------

def barlow_twins_loss(z1: jax.Array, z2: jax.Array, lambd: float = 0.0051, *, ddof: int = 0,
                      eps: float = 1e-5) -> jax.Array:
  """Barlow Twins: sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2, C = z1n^T z2n / n (Zbontar et al. 2021, Eq. (1)).

  Args:
    z1, z2: [n, d] embeddings of two views; standardised per feature inside (BatchNorm without affine: ddof=0,
      eps=1e-5; mix-bt's code uses ddof=1, eps=0).
    lambd: >= 0 off-diagonal weight (0.0051 in the official Barlow Twins code; mix-bt uses 1/d).

  Returns:
    Scalar loss; 0 iff C = I.
  """
  z1 = _check_2d("z1", z1)
  z2 = _check_2d("z2", z2)
  _check_same("z1", z1, "z2", z2)
  check_nonnegative(lambd, "lambd")
  z1, z2 = _up(z1, z2)
  n = z1.shape[0]
  c = standardize(z1, ddof=ddof, eps=eps).T @ standardize(z2, ddof=ddof, eps=eps) / n
  on = jnp.sum(jnp.square(1 - jnp.diagonal(c)))
  off = jnp.sum(jnp.square(c)) - jnp.sum(jnp.square(jnp.diagonal(c)))
  return on + lambd * off


def mixed_barlow_twins_regularizer(z1: jax.Array, z2: jax.Array, z_mix: jax.Array, perm: jax.Array,
                                   alpha: jax.Array | float, *, lambd: float, mixup_loss_scale: float = 1.0,
                                   ddof: int = 1, eps: float = 0.0) -> jax.Array:
  """Mixed Barlow Twins regulariser (Bandara et al. 2023, Sec. 3; official mix-bt `main.py`).

  With x_mix = alpha x1 + (1 - alpha) x2[perm] and z_mix its embedding, linearity in the input space is asked of
  the cross-correlations (all of standardised embeddings, divided by n):

    C(z_mix, z1) ~ alpha C(z1, z1) + (1 - alpha) C(z2[perm], z1)
    C(z_mix, z2) ~ alpha C(z1, z2) + (1 - alpha) C(z2[perm], z2)
    R = scale * lambda * ( ||C(z_mix, z1) - gt_1||_F^2 + ||C(z_mix, z2) - gt_2||_F^2 )

  (official: alpha ~ Beta(1, 1); scale `mixup_loss_scale` 1-5 with lambda = 1/d). R = 0 when alpha = 1 and z_mix = z1,
  or alpha = 0 and z_mix = z2[perm].

  Args:
    z1, z2, z_mix: [n, d] floating. perm: [n] int permutation used for the mixed inputs (not a permutation of
      0..n-1: ValueError eagerly, NaN under jit). alpha: a scalar in [0, 1] (outside: ValueError eagerly, NaN under
      jit).
    lambd >= 0, mixup_loss_scale >= 0. ddof/eps: standardisation (official: unbiased std, no eps).

  Returns:
    Scalar regulariser.
  """
  z1 = _check_2d("z1", z1)
  z2 = _check_2d("z2", z2)
  z_mix = _check_2d("z_mix", z_mix)
  _check_same("z1", z1, "z2", z2)
  _check_same("z1", z1, "z_mix", z_mix)
  perm = validation.check_integer(perm, "perm")
  if perm.shape != z1.shape[:1]:
    raise ValueError(f"perm must have shape [n]={z1.shape[:1]}, got perm.shape={perm.shape}")
  n = z1.shape[0]
  srt = jnp.sort(perm)
  valid = validation.check_values(srt == jnp.arange(n, dtype=srt.dtype), perm, "perm",
                                  f"a permutation of 0..{n - 1}")
  # a traced alpha (e.g. a Beta draw under jit) outside [0, 1]: NaN, not a silent value
  valid = validation.combine_valid(valid, validation.scalar_in_interval(alpha, "alpha", 0.0, 1.0))
  check_nonnegative(lambd, "lambd")
  check_nonnegative(mixup_loss_scale, "mixup_loss_scale")
  z1, z2, z_mix = _up(z1, z2, z_mix)
  perm = jnp.clip(perm, 0, n - 1)
  a1 = standardize(z1, ddof=ddof, eps=eps)
  a2 = standardize(z2, ddof=ddof, eps=eps)
  am = standardize(z_mix, ddof=ddof, eps=eps)
  a2p = a2[perm]
  c_m1 = am.T @ a1 / n
  gt1 = alpha * (a1.T @ a1) / n + (1 - alpha) * (a2p.T @ a1) / n
  c_m2 = am.T @ a2 / n
  gt2 = alpha * (a1.T @ a2) / n + (1 - alpha) * (a2p.T @ a2) / n
  out = mixup_loss_scale * lambd * (jnp.sum(jnp.square(c_m1 - gt1)) + jnp.sum(jnp.square(c_m2 - gt2)))
  return validation.nan_where_invalid(out, valid)


# ----------------------------------------------------------------------------------------------------------------
# [120] Eckhart-Young objectives
# ----------------------------------------------------------------------------------------------------------------

def ey_gep_loss(a: jax.Array, b1: jax.Array, u: jax.Array, b2: Optional[jax.Array] = None) -> jax.Array:
  """EY loss of the generalised eigenproblem A u = lambda B u (Chapman et al. 2024, Sec. 3):

    L(U) = -2 tr(U^T A U) + tr(U^T B1 U U^T B2 U)

  With B2 an independent estimate of B (a second batch) the stochastic loss is unbiased. For symmetric A and B > 0
  its minimum over U in R^{p x k} is -sum_{i <= k} lambda_i^2 over the top-k positive generalised eigenvalues,
  attained at U = V_k diag(lambda_k)^{1/2} with V^T B V = I (up to rotation).

  Args:
    a: [p, p] symmetric; b1: [p, p] SPD; u: [p, k]; b2: [p, p] (default b1).

  Returns:
    Scalar.
  """
  a = validation.check_floating(a, "a")
  b1 = validation.check_floating(b1, "b1")
  u = validation.check_floating(u, "u")
  b2 = b1 if b2 is None else validation.check_floating(b2, "b2")
  p = a.shape[0] if a.ndim == 2 else -1
  if a.shape != (p, p) or b1.shape != (p, p) or b2.shape != (p, p) or u.ndim != 2 or u.shape[0] != p:
    raise ValueError(f"need a, b1, b2 of shape [p, p] and u of shape [p, k], got {a.shape=}, {b1.shape=}, "
                     f"{b2.shape=}, {u.shape=}")
  if p < 1 or u.shape[1] < 1:
    raise ValueError(f"need p >= 1 and k >= 1, got {a.shape=}, {u.shape=}")
  a, b1, b2, u = _up(a, b1, b2, u)
  return -2 * jnp.trace(u.T @ a @ u) + jnp.trace((u.T @ b1 @ u) @ (u.T @ b2 @ u))


def _cov(x: jax.Array, y: jax.Array) -> jax.Array:
  n = x.shape[0]
  return (x - x.mean(0)).T @ (y - y.mean(0)) / (n - 1)


def cca_ey_loss(zx: jax.Array, zy: jax.Array, zx2: Optional[jax.Array] = None,
                zy2: Optional[jax.Array] = None) -> jax.Array:
  """EY loss for CCA / SSL-EY on representations (Chapman et al. 2024, Sec. 3-4; official `ssley.py`).

  For CCA, A = [[0, S_xy], [S_yx, 0]], B = blockdiag(S_xx, S_yy); on representations zx = X U_x, zy = Y U_y:
    U^T A U = C_xy + C_yx,  U^T B U = V_x + V_y   (covariances with 1/(n-1), centred per batch)
    L = -2 tr(U^T A U) + tr(V^(1) V^(2))
  where V^(1), V^(2) come from two independent batches (zx, zy) and (zx2, zy2); A is averaged over both batches.
  With a single batch (zx2 = zy2 = None) this is the official SSL-EY loss, -2 tr(2 C_xy) + tr(V V) (biased).
  Minimum: -sum_{i <= k} rho_i^2 (top-k canonical correlations).

  Args:
    zx, zy: [n, k] representations of the two views; zx2, zy2: [m, k] from an independent batch, or None.

  Returns:
    Scalar.
  """
  return _cca_ey(zx, zy, zx2, zy2, ("zx", "zy", "zx2", "zy2"))


def _cca_ey(zx, zy, zx2, zy2, names):
  nx, ny, nx2, ny2 = names
  zx = _check_2d(nx, zx)
  zy = _check_2d(ny, zy)
  _check_same(nx, zx, ny, zy)
  if (zx2 is None) != (zy2 is None):
    raise ValueError(f"give both {nx2} and {ny2} (second batch) or neither")
  zx, zy = _up(zx, zy)
  cxy = _cov(zx, zy)
  v1 = _cov(zx, zx) + _cov(zy, zy)
  a_term = jnp.trace(cxy + cxy.T)
  if zx2 is None:
    v2 = v1
  else:
    zx2 = _check_2d(nx2, zx2)
    zy2 = _check_2d(ny2, zy2)
    _check_same(nx2, zx2, ny2, zy2)
    if zx2.shape[1] != zx.shape[1]:
      raise ValueError(f"{nx2} (second batch) must have k={zx.shape[1]} columns, got {nx2}.shape={zx2.shape}")
    zx2, zy2 = _up(zx2, zy2)
    c2 = _cov(zx2, zy2)
    v2 = _cov(zx2, zx2) + _cov(zy2, zy2)
    a_term = (a_term + jnp.trace(c2 + c2.T)) / 2
  return -2 * a_term + jnp.trace(v1 @ v2)


def ssl_ey_loss(z1: jax.Array, z2: jax.Array, z1_b: Optional[jax.Array] = None,
                z2_b: Optional[jax.Array] = None) -> jax.Array:
  """SSL-EY: `cca_ey_loss` on the projector outputs of two augmented views (Chapman et al. 2024, arXiv:2310.01012,
  Sec. 4). z1, z2: [n, k] floating (n >= 2); z1_b, z2_b: [m, k] from an independent batch, or None. Scalar."""
  return _cca_ey(z1, z2, z1_b, z2_b, ("z1", "z2", "z1_b", "z2_b"))


def pls_ey_loss(zx: jax.Array, zy: jax.Array, ux: jax.Array, uy: jax.Array) -> jax.Array:
  """EY loss for PLS: A as for CCA, B = I, so U^T B U = U_x^T U_x + U_y^T U_y (Chapman et al. 2024, Sec. 3).

  Args:
    zx = X U_x, zy = Y U_y: [n, k]; ux: [p, k], uy: [q, k] the weights.

  Returns:
    Scalar; minimum -sum_{i <= k} sigma_i^2 (top singular values of S_xy).
  """
  zx = _check_2d("zx", zx)
  zy = _check_2d("zy", zy)
  _check_same("zx", zx, "zy", zy)
  ux = validation.check_floating(ux, "ux")
  uy = validation.check_floating(uy, "uy")
  if ux.ndim != 2 or uy.ndim != 2 or ux.shape[1] != zx.shape[1] or uy.shape[1] != zx.shape[1]:
    raise ValueError(f"ux, uy must be [p, k], [q, k] with k={zx.shape[1]}, got {ux.shape=}, {uy.shape=}")
  zx, zy, ux, uy = _up(zx, zy, ux, uy)
  cxy = _cov(zx, zy)
  v = ux.T @ ux + uy.T @ uy
  return -2 * jnp.trace(cxy + cxy.T) + jnp.trace(v @ v)


# ----------------------------------------------------------------------------------------------------------------
# [96] MLC
# ----------------------------------------------------------------------------------------------------------------

def coding_rate(z: jax.Array, eps: float = 0.5) -> jax.Array:
  """R(Z; eps) = 1/2 logdet(I_d + d / (n eps^2) Z^T Z) for Z: [n, d] (rows are samples), the rate-distortion coding
  rate of MCR^2 (Yu et al., "Learning Diverse and Discriminative Representations via the Principle of Maximal Coding
  Rate Reduction", NeurIPS 2020, arXiv:2006.08558, Sec. 2). MLC's R (Ding et al. 2023, arXiv:2301.01805, Eq. (4))
  has no 1/2: it is 2 * coding_rate (see `mlc_loss`). Computed with slogdet in float32 or wider; returns a scalar."""
  z = _up(_check_2d("z", z, min_rows=1))
  check_positive(eps, "eps")
  n, d = z.shape
  m = jnp.eye(d, dtype=z.dtype) + (d / (n * eps ** 2)) * (z.T @ z)
  return 0.5 * jnp.linalg.slogdet(m)[1]


def _check_official_code_scale(flag) -> float:
  if not isinstance(flag, bool):
    raise TypeError(f"official_code_scale must be a bool, got official_code_scale={flag!r}")
  return 0.5 if flag else 1.0


def mlc_compression_rate(z: jax.Array, gamma: jax.Array, eps: float = 0.5, *,
                         official_code_scale: bool = False) -> jax.Array:
  """MLC's compression rate R_c(Z, Gamma) = (1/n) sum_j logdet(I + d / eps^2 Z^T diag(Gamma_:j) Z) for a doubly
  stochastic membership Gamma: [n, n] (Ding et al. 2023, arXiv:2301.01805, Eq. (4); each column j is a soft cluster
  of mass tr(diag(Gamma_:j)) = 1, so the MCR^2 weight tr(Pi_j)/n is 1/n).

  The paper's Eq. (4) has no 1/2 in front of the log-determinants; the MCR^2-family code (`CompressLoss` /
  `TotalCodingRate`, which divide by 2) halves both R_c and R: `official_code_scale=True` returns that (R_c / 2).
  Either way the objective R - R_c only changes by a constant factor (the same optimum; with Adam the same updates).

  Special cases: Gamma = 11^T / n (one cluster) gives MLC's R(Z) = 2 coding_rate(Z); Gamma = I gives
  (1/n) sum_j log(1 + d/eps^2 ||z_j||^2).

  Args:
    z: [n, d] floating, n >= 1. gamma: [n, n] floating with entries >= 0 (negative: ValueError eagerly, NaN under
      jit). eps: > 0 distortion. official_code_scale: bool (keyword-only), see above.

  Returns:
    A scalar, float32 or wider.
  """
  z = _up(_check_2d("z", z, min_rows=1))
  gamma = _up(validation.check_floating(gamma, "gamma"))
  n, d = z.shape
  if gamma.shape != (n, n):
    raise ValueError(f"gamma must be [n, n]={(n, n)}, got {gamma.shape=}")
  check_positive(eps, "eps")
  scale = _check_official_code_scale(official_code_scale)
  valid = validation.check_values(jnp.isnan(gamma) | (gamma >= 0), gamma, "gamma",
                                  "a membership matrix with entries >= 0 (doubly stochastic)")
  # M_j = I + d/eps^2 sum_i Gamma_ij z_i z_i^T, batched over j.
  m = jnp.eye(d, dtype=z.dtype)[None] + (d / eps ** 2) * jnp.einsum("ij,ia,ib->jab", gamma, z, z)
  return validation.nan_where_invalid(scale * jnp.sum(jnp.linalg.slogdet(m)[1]) / n, valid)


def mlc_loss(z: jax.Array, gamma: jax.Array, eps: float = 0.5, *, official_code_scale: bool = False) -> jax.Array:
  """Negative MLC rate reduction R_c(Z, Gamma) - R(Z) to minimise (Ding et al. 2023, arXiv:2301.01805, Eq. (4), with
  R = logdet(I + d/(n eps^2) Z^T Z) and R_c from `mlc_compression_rate`; no 1/2 on either, as in the paper). The
  entropy regulariser of the paper's objective lives in the Sinkhorn projection `doubly_stochastic`.
  `official_code_scale=True` halves both terms (the authors' code scale). Z rows should be unit-normalised (the
  paper's representation lies on the sphere).

  Args:
    z: [n, d] floating; gamma: [n, n] doubly stochastic; eps > 0.

  Returns:
    A scalar (0 for the one-cluster Gamma = 11^T / n).
  """
  scale = _check_official_code_scale(official_code_scale)
  return (mlc_compression_rate(z, gamma, eps, official_code_scale=official_code_scale)
          - 2.0 * scale * coding_rate(z, eps))


def doubly_stochastic(s: jax.Array, eta: float = 0.1, num_iters: int = 50) -> jax.Array:
  """Sinkhorn projection of exp(S / eta) onto doubly stochastic matrices, in the log domain (Ding et al. 2023,
  Sec. 3: Gamma = P_{Omega, eta}(C^T C), the entropy-regularised projection of the cluster-head kernel).

  Args:
    s: [n, n] scores (e.g. cosine similarities of the cluster head's outputs). eta: > 0 entropy weight.
    num_iters: >= 1 row/column normalisation sweeps.

  Returns:
    [n, n] Gamma with rows and columns summing to 1 (to Sinkhorn tolerance).
  """
  s = validation.check_floating(s, "s")
  if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] < 1:
    raise ValueError(f"s must be square [n, n] with n >= 1, got s.shape={s.shape}")
  check_positive(eta, "eta")
  dtype = s.dtype
  s = _up(s)
  if isinstance(num_iters, bool) or not isinstance(num_iters, int) or num_iters < 1:
    raise ValueError(f"num_iters must be a Python int >= 1, got {num_iters=}")
  log_k = s / eta

  def body(_, f):
    g = -jax.nn.logsumexp(log_k + f[:, None], axis=0)
    f = -jax.nn.logsumexp(log_k + g[None, :], axis=1)
    return f

  f = jax.lax.fori_loop(0, num_iters, body, jnp.zeros(s.shape[0], s.dtype))
  g = -jax.nn.logsumexp(log_k + f[:, None], axis=0)
  return jnp.exp(log_k + f[:, None] + g[None, :]).astype(dtype)
