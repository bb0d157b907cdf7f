"""The deep conjugate direction method (DCDM): a ConvNet proposes search directions, A-orthogonalised against the
previous ones, for symmetric positive-definite systems such as the 2-D Poisson equation.

Ayano Kaneda, Osman Akar, Jingyu Chen, Victoria Alicia Trevino Kala, David Hyde, Joseph Teran, "A Deep Conjugate
Direction Method for Iteratively Solving Linear Systems", ICML 2023, arXiv:2205.10763 (Sec. 3, Algorithm 1 and the
loss of Sec. 3.2).

- `poisson_2d_matvec(x)`: the 5-point Laplacian with homogeneous Dirichlet boundary on an [n, n] grid (SPD), and
  `poisson_2d_eigenvectors` its closed-form sine eigenbasis (for smooth training residuals).
- `dcdm_solve(matvec, b, direction_fn, k_orth, tol, max_iters)`: Algorithm 1. r_0 = b - A x_0; at step k the
  direction d_k = f(r_k / ||r_k||) is A-orthogonalised against the last `k_orth` directions (d_k -= (d_k^T A d_i) /
  (d_i^T A d_i) d_i), then the exact line search alpha = r^T d / d^T A d, x += alpha d, r -= alpha A d. With
  f = identity and k_orth = 1 this is conjugate gradients (CG's beta in its A-orthogonalisation form).
- `scale_invariant_residual_loss(r, a_f)`: min_alpha ||r - alpha A f(r)||^2 = ||r||^2 - (r^T A f)^2 / ||A f||^2 (the
  unknown constant of the approximate inverse eliminated, Sec. 3.2).
- `DCDMNet`: a small fully convolutional network (a coarse path at half resolution plus a fine path), so one set of
  weights serves every grid size; the paper's network is deeper (more resolution levels).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlib_methods import validation


def poisson_2d_matvec(x: jax.Array) -> jax.Array:
  """A x for the 2-D Poisson matrix (4 on the diagonal, -1 for the 4 neighbours, zero Dirichlet boundary): the SPD
  system that DCDM solves (Kaneda et al., "A Deep Conjugate Direction Method for Iteratively Solving Linear Systems",
  ICML 2023, arXiv:2205.10763, Sec. 3, Algorithm 1).

  Args:
    x: [..., n, n] grid values.

  Returns:
    [..., n, n].
  """
  x = validation.check_floating(x, "x")
  if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
    raise ValueError(f"x must be [..., n, n], got x.shape={x.shape}")
  pad = [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)]
  p = jnp.pad(x, pad)
  return 4 * x - p[..., :-2, 1:-1] - p[..., 2:, 1:-1] - p[..., 1:-1, :-2] - p[..., 1:-1, 2:]


def poisson_2d_eigenvectors(n: int, modes) -> tuple[np.ndarray, np.ndarray]:
  """Orthonormal eigenvectors v_{ij}[a, b] = (2 / (n + 1)) sin(pi i (a+1) / (n+1)) sin(pi j (b+1) / (n+1)) of the
  Poisson matrix, eigenvalue 4 - 2 cos(pi i / (n+1)) - 2 cos(pi j / (n+1)): the basis of smooth training residuals for
  the 2-D Poisson system of Kaneda et al., "A Deep Conjugate Direction Method for Iteratively Solving Linear
  Systems", ICML 2023, arXiv:2205.10763 (loss of Sec. 3.2).

  Args:
    n: grid side.
    modes: [M, 2] int pairs (i, j), 1 <= i, j <= n.

  Returns:
    ([M, n, n] float64 eigenvectors, [M] eigenvalues).
  """
  modes = np.asarray(modes)
  if modes.ndim != 2 or modes.shape[1] != 2 or modes.min() < 1 or modes.max() > n:
    raise ValueError(f"modes must be [M, 2] ints in [1, n = {n}], got shape {modes.shape}")
  a = np.arange(1, n + 1)
  s = lambda i: np.sin(np.pi * np.outer(i, a) / (n + 1))          # [M, n]
  v = (2.0 / (n + 1)) * s(modes[:, 0])[:, :, None] * s(modes[:, 1])[:, None, :]
  lam = 4 - 2 * np.cos(np.pi * modes[:, 0] / (n + 1)) - 2 * np.cos(np.pi * modes[:, 1] / (n + 1))
  return v, lam


def dcdm_solve(matvec: Callable[[jax.Array], jax.Array], b: jax.Array, direction_fn: Callable[[jax.Array], jax.Array],
               *, k_orth: int = 2, tol: float = 1e-4, max_iters: int = 100, x0: jax.Array | None = None):
  """Algorithm 1 of Kaneda et al. 2023 (arXiv:2205.10763): conjugate directions from a learnt map f.

  Args:
    matvec: x -> A x for SPD A (same shape as b).
    b: right-hand side [...] (any shape; one system).
    direction_fn: f, r_normalised -> search direction (same shape).
    k_orth: number of previous directions to A-orthogonalise against (>= 1).
    tol: stop when ||r|| / ||b|| <= tol.
    max_iters: iteration cap (a Python int >= 1).
    x0: initial guess (zeros by default).

  Returns:
    (x, info): info["iters"] the iterations run (int32), info["residuals"] the relative residual norms, max_iters + 1 of them
    (entry k after k iterations; padded with the last value).
  """
  b = validation.check_floating(b, "b")
  if isinstance(k_orth, bool) or not isinstance(k_orth, int) or k_orth < 1:
    raise ValueError(f"k_orth must be an int >= 1, got {k_orth=!r}")
  if isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters < 1:
    raise ValueError(f"max_iters must be an int >= 1, got {max_iters=!r}")
  validation.check_positive(tol, "tol")
  x = jnp.zeros_like(b) if x0 is None else jnp.asarray(x0, b.dtype)
  r = b - matvec(x)
  bnorm = jnp.linalg.norm(b)
  dot = lambda u, v: jnp.sum(u * v)
  ds = jnp.zeros((k_orth,) + b.shape, b.dtype)          # ring buffer of previous directions and their A d
  ads = jnp.zeros_like(ds)
  dads = jnp.ones((k_orth,), b.dtype)                   # d_i^T A d_i (1 for the empty slots, whose d_i = 0)
  hist = jnp.full((max_iters + 1,), jnp.linalg.norm(r) / bnorm)

  def cond(state):
    k, x, r, *_ = state
    return (k < max_iters) & (jnp.linalg.norm(r) / bnorm > tol)

  def body(state):
    k, x, r, ds, ads, dads, hist = state
    d = direction_fn(r / jnp.linalg.norm(r))
    for i in range(k_orth):                              # d -= sum_i (d^T A d_i / d_i^T A d_i) d_i (Alg. 1, l. 6)
      d = d - dot(d, ads[i]) / dads[i] * ds[i]
    ad = matvec(d)
    dad = dot(d, ad)
    alpha = dot(r, d) / dad
    x = x + alpha * d
    r = r - alpha * ad
    slot = k % k_orth
    ds, ads, dads = ds.at[slot].set(d), ads.at[slot].set(ad), dads.at[slot].set(dad)
    hist = hist.at[k + 1].set(jnp.linalg.norm(r) / bnorm)
    return k + 1, x, r, ds, ads, dads, hist

  k, x, r, *_, hist = jax.lax.while_loop(cond, body, (jnp.int32(0), x, r, ds, ads, dads, hist))
  hist = jnp.where(jnp.arange(max_iters + 1) > k, hist[k], hist)   # entries after the last iterate hold its residual
  return x, {"iters": k, "residuals": hist}


def scale_invariant_residual_loss(r: jax.Array, a_f: jax.Array) -> jax.Array:
  """min_alpha ||r - alpha A f(r)||^2 = ||r||^2 - (r^T A f)^2 / ||A f||^2, per example (Kaneda et al. 2023,
  arXiv:2205.10763, Sec. 3.2: the network approximates A^{-1} only up to a scalar).

  Args:
    r: [B, ...] residuals.
    a_f: [B, ...] A applied to the network's output f(r).

  Returns:
    [B] losses (float32).
  """
  r = validation.check_floating(r, "r").astype(jnp.float32)
  a_f = validation.check_floating(a_f, "a_f").astype(jnp.float32)
  if r.shape != a_f.shape or r.ndim < 2:
    raise ValueError(f"r and a_f must both be [B, ...] with the same shape, got {r.shape} and {a_f.shape}")
  rf, af = r.reshape(r.shape[0], -1), a_f.reshape(r.shape[0], -1)
  return jnp.sum(rf * rf, -1) - jnp.sum(rf * af, -1) ** 2 / jnp.maximum(jnp.sum(af * af, -1), 1e-30)


class DCDMNet(nnx.Module):
  """A small fully convolutional direction network for DCDM (Kaneda et al. 2023, arXiv:2205.10763, Sec. 3.3, in a
  much smaller form): a fine path of `depth` 3x3 convolutions and a coarse path (2x2 average pool, `depth` 3x3
  convolutions, nearest upsampling), summed and mapped to one channel; linear output.

  Args:
    features: channels of the hidden convolutions.
    depth: convolutions per path (>= 1).
    residual: if True the direction is r + net(r) (identity plus a learnt correction, the output convolution
      zero-initialised so that an untrained network gives CG's first direction); our deviation for short CPU
      training, the paper's network maps r to the direction directly (residual=False).
    param_dtype: dtype of the parameters.
    rngs: nnx.Rngs.
  """

  def __init__(self, features: int = 16, depth: int = 2, *, residual: bool = False, param_dtype=jnp.float32,
               rngs: nnx.Rngs):
    for name, v in (("features", features), ("depth", depth)):
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {name}={v!r}")
    conv = lambda i, o: nnx.Conv(i, o, (3, 3), padding="SAME", param_dtype=param_dtype, rngs=rngs)
    self.fine = nnx.List([conv(1 if i == 0 else features, features) for i in range(depth)])
    self.coarse = nnx.List([conv(1 if i == 0 else features, features) for i in range(depth)])
    self.residual = bool(residual)
    self.out = nnx.Conv(features, 1, (1, 1), param_dtype=param_dtype, rngs=rngs,
                        kernel_init=nnx.initializers.zeros if residual else nnx.initializers.lecun_normal())

  def __call__(self, r: jax.Array) -> jax.Array:
    """r [..., n, n] (n even) -> direction [..., n, n]."""
    r = validation.check_floating(r, "r")
    if r.ndim < 2 or r.shape[-1] != r.shape[-2] or r.shape[-1] % 2:
      raise ValueError(f"r must be [..., n, n] with n even, got r.shape={r.shape}")
    lead = r.shape[:-2]
    h = r.reshape((-1,) + r.shape[-2:] + (1,))
    f = h
    for c in self.fine:
      f = jax.nn.gelu(c(f))
    n = h.shape[1]
    g = h.reshape(h.shape[0], n // 2, 2, n // 2, 2, 1).mean((2, 4))
    for c in self.coarse:
      g = jax.nn.gelu(c(g))
    g = jnp.repeat(jnp.repeat(g, 2, axis=1), 2, axis=2)
    d = self.out(f + g)[..., 0].reshape(lead + r.shape[-2:])
    return r + d if self.residual else d
