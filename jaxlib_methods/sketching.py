"""Randomised sketches for least squares: Gaussian, SRHT and CountSketch, and sketch-and-solve regression.

Song, Ye, Yin, Zhang, "A Nearly-Optimal Bound for Fast Regression with ell_infty Guarantee", ICML 2023,
arXiv:2302.00248. For A [n, d], b [n] and x* = argmin_x ||A x - b||_2, the sketched solution
x' = argmin_x ||S A x - S b||_2 with a dense sketch S [m, n] (Gaussian or SRHT) and m = eps^-2 d log^3(n / delta)
rows satisfies, with probability >= 1 - delta (their Theorem 1.1 / abstract),

    ||x' - x*||_inf <= (eps / sqrt(d)) ||A x* - b||_2 ||A^+||_2,

while sparse sketches such as CountSketch do not (Price, Song, Woodruff 2017 give the counterexamples): the paper's
point is that dense sketches are necessary for the ell_infty guarantee. `linf_bound_eps` inverts the row count to the
eps a given m certifies (the paper states m up to a constant; the constant 1 is used here and said so).

Conventions (so that E[S^T S] = I_n for every sketch here):
- `gaussian_sketch`: S_ij ~ N(0, 1 / m) i.i.d.
- `srht_sketch`: S = sqrt(n / m) P H D, D random signs, H the orthonormal Walsh-Hadamard matrix (n a power of two),
  P samples m distinct rows uniformly; S S^T = (n / m) I_m exactly. `apply_srht` computes S X in O(n log n) per
  column with the same key.
- `countsketch`: column j has a single nonzero sigma_j in {-1, +1} at row h(j) uniform in [0, m). `apply_countsketch`
  computes S X by a segment sum with the same key.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxlib_methods import validation

__all__ = ["apply_countsketch", "apply_srht", "countsketch", "gaussian_sketch", "linf_bound_eps", "sketched_lstsq",
           "srht_sketch", "walsh_hadamard"]


def _check_mn(m, n, names: tuple[str, str] = ("m", "n")) -> None:
  for name, v in zip(names, (m, n)):
    validation.check_int(v, name, 1)


def _check_key(key) -> None:
  if not (isinstance(key, jax.Array) and (jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or key.dtype == jnp.uint32)):
    raise TypeError(f"key must be a jax PRNG key (jax.random.key(seed)), got {type(key).__name__}")


def _check_apply(key, x, m):
  """The checks shared by the apply functions: a PRNG key, floating x [n, ...], 1 <= m. Returns (x, n)."""
  _check_key(key)
  x = validation.check_floating(x, "x")
  if x.ndim < 1:
    raise ValueError(f"x must have a leading axis of size n, got x.shape={x.shape}")
  _check_mn(m, x.shape[0])
  return x, x.shape[0]


def gaussian_sketch(key, m: int, n: int, dtype=jnp.float32):
  """The dense Gaussian sketch S [m, n], S_ij ~ N(0, 1 / m) (Song et al. 2023, arXiv:2302.00248, Sec. 2; E[S^T S] = I).

  Args:
    key: jax PRNG key.
    m: int >= 1 rows (sketch size).
    n: int >= 1 columns (rows of the matrix to sketch).
    dtype: float dtype of S.

  Returns:
    [m, n] array.
  """
  _check_key(key)
  _check_mn(m, n)
  return jax.random.normal(key, (m, n), dtype) / jnp.sqrt(jnp.asarray(m, dtype))


def walsh_hadamard(x):
  """The orthonormal fast Walsh-Hadamard transform H x along axis 0 (Sylvester order, H = H^T = H^-1).

  The H of the SRHT sketch S = sqrt(n / m) P H D of Song et al., "A Nearly-Optimal Bound for Fast Regression with
  ell_infty Guarantee", ICML 2023, arXiv:2302.00248; Sylvester's construction of H is Sylvester 1867.

  Args:
    x: [n, ...] float, n a power of two.

  Returns:
    [n, ...] array H x, computed in O(n log n) per column.
  """
  x = validation.check_floating(x, "x")
  n = x.shape[0] if x.ndim else 0
  if n < 1 or n & (n - 1):
    raise ValueError(f"x.shape[0] must be a power of two, got x.shape={x.shape}")
  rest = x.shape[1:]
  h = 1
  y = x
  while h < n:
    y = y.reshape((n // (2 * h), 2, h) + rest)
    a, b = y[:, 0], y[:, 1]
    y = jnp.stack([a + b, a - b], axis=1)
    h *= 2
  return y.reshape((n,) + rest) / jnp.sqrt(jnp.asarray(n, x.dtype))


def _srht_parts(key, m: int, n: int, dtype):
  k_sign, k_rows = jax.random.split(key)
  signs = jax.random.rademacher(k_sign, (n,), dtype)
  rows = jax.random.choice(k_rows, n, (m,), replace=False)
  return signs, rows


def apply_srht(key, x, m: int):
  """S x for the SRHT S = sqrt(n / m) P H D of `srht_sketch(key, m, n)` (the same key gives the same S), in
  O(n log n) per column (Song et al. 2023, arXiv:2302.00248, Sec. 2; Tropp 2011).

  Args:
    key: jax PRNG key.
    x: [n, ...] float, n a power of two.
    m: int in [1, n], rows kept.

  Returns:
    [m, ...] array.
  """
  x, n = _check_apply(key, x, m)
  if m > n:
    raise ValueError(f"m must be <= n = {n} (rows are sampled without replacement), got {m=}")
  if n & (n - 1):
    raise ValueError(f"n = x.shape[0] must be a power of two for the Hadamard transform (pad with zero rows), got {n=}")
  signs, rows = _srht_parts(key, m, n, x.dtype)
  hx = walsh_hadamard(x * signs.reshape((n,) + (1,) * (x.ndim - 1)))
  return hx[rows] * jnp.sqrt(jnp.asarray(n / m, x.dtype))


def srht_sketch(key, m: int, n: int, dtype=jnp.float32):
  """The subsampled randomised Hadamard transform S = sqrt(n / m) P H D as a dense [m, n] matrix (Song et al. 2023,
  arXiv:2302.00248, Sec. 2). Rows are orthogonal: S S^T = (n / m) I_m; E[S^T S] = I_n.

  Args:
    key: jax PRNG key.
    m: int in [1, n] rows.
    n: int, a power of two.
    dtype: float dtype.

  Returns:
    [m, n] array (for large n use `apply_srht`, which never forms it).
  """
  _check_mn(m, n)
  return apply_srht(key, jnp.eye(n, dtype=dtype), m)


def _countsketch_parts(key, m: int, n: int, dtype):
  k_h, k_s = jax.random.split(key)
  return jax.random.randint(k_h, (n,), 0, m), jax.random.rademacher(k_s, (n,), dtype)


def apply_countsketch(key, x, m: int):
  """S x for the CountSketch S of `countsketch(key, m, n)` (same key, same S): (S x)_r = sum_{j: h(j) = r}
  sigma_j x_j, in O(nnz(x)) (Song et al. 2023, arXiv:2302.00248, Sec. 2; Clarkson & Woodruff 2013).

  Args:
    key: jax PRNG key.
    x: [n, ...] float.
    m: int >= 1 buckets.

  Returns:
    [m, ...] array.
  """
  x, n = _check_apply(key, x, m)
  h, sigma = _countsketch_parts(key, m, n, x.dtype)
  return jax.ops.segment_sum(x * sigma.reshape((n,) + (1,) * (x.ndim - 1)), h, num_segments=m)


def countsketch(key, m: int, n: int, dtype=jnp.float32):
  """The sparse CountSketch matrix S [m, n]: one nonzero, +-1, per column (Song et al. 2023, arXiv:2302.00248,
  Sec. 2); E[S^T S] = I_n, diag(S^T S) = 1 exactly.

  Args:
    key: jax PRNG key.
    m: int >= 1 rows.
    n: int >= 1 columns.
    dtype: float dtype.

  Returns:
    [m, n] array.
  """
  _check_mn(m, n)
  return apply_countsketch(key, jnp.eye(n, dtype=dtype), m)


def sketched_lstsq(A, b, S):
  """Sketch-and-solve least squares x' = argmin_x ||S A x - S b||_2 = (S A)^+ S b (Song et al. 2023,
  arXiv:2302.00248, Eq. (1)).

  Args:
    A: [n, d] float.
    b: [n] or [n, k] float.
    S: [m, n] float sketch (m >= d for a unique solution).

  Returns:
    [d] (or [d, k]) solution x'.
  """
  A = validation.check_floating(A, "A")
  b = validation.check_floating(b, "b")
  S = validation.check_floating(S, "S")
  if A.ndim != 2:
    raise ValueError(f"A must be [n, d], got A.shape={A.shape}")
  if b.ndim not in (1, 2) or b.shape[0] != A.shape[0]:
    raise ValueError(f"b must be [n] or [n, k] with n = A.shape[0] = {A.shape[0]}, got b.shape={b.shape}")
  if S.ndim != 2 or S.shape[1] != A.shape[0]:
    raise ValueError(f"S must be [m, n] with n = A.shape[0] = {A.shape[0]}, got S.shape={S.shape}")
  return jnp.linalg.lstsq(S @ A, S @ b)[0]


def linf_bound_eps(m: int, n: int, d: int, delta: float) -> float:
  """The eps that m rows certify in the paper's row count m = eps^-2 d log^3(n / delta) (Song et al. 2023,
  arXiv:2302.00248, Theorem 1.1; its constant is unspecified, 1 is used): eps = sqrt(d log^3(n / delta) / m).

  Args:
    m: int >= 1 sketch rows.
    n: int >= 1 data rows.
    d: int >= 1 columns.
    delta: failure probability in (0, 1).

  Returns:
    Python float eps.
  """
  _check_mn(m, n)
  _check_mn(d, n, ("d", "n"))
  validation.check_in_interval(delta, "delta", 0.0, 1.0, closed_low=False, closed_high=False)
  return math.sqrt(d * math.log(n / delta) ** 3 / m)
