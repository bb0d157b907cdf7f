"""Deep kernel machines: the DKM objective over layer Gram matrices, its optimiser, and the NNGP it tends to.

Paper [196]: Adam X. Yang, Maxime Robeyns, Edward Milsom, Ben Anson, Nandi Schoots, Laurence Aitchison, "A theory of
representation learning gives a deep generalisation of kernel methods", ICML 2023, arXiv:2108.13097 (the
DKM objective of the abstract: a log-likelihood minus KL terms that keep the posteriors close to the prior):

    L(G_1, ..., G_L) = log P(Y | G_L) - sum_l nu_l KL( N(0, G_l) || N(0, K(G_{l-1})) ),      G_0 = X X^T / d_0,

with log P(Y | G_L) = sum_c log N(y_c; 0, K(G_L) + noise_var I) over the output channels y_c and KL(N(0, A) ||
N(0, B)) = (tr(B^-1 A) - P + log det B - log det A) / 2. Here K is the arc-cosine (ReLU NNGP) kernel of a Gram
matrix, K(G)_ij = sqrt(G_ii G_jj) (sin t + (pi - t) cos t) / pi with cos t = G_ij / sqrt(G_ii G_jj). As nu -> infinity
the KL terms pin G_l = K(G_{l-1}): the NNGP recursion (`dkm_nngp_grams`), which has no representation learning;
finite nu lets the likelihood move the Grams.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods import validation


def _relu_kernel(g):
  """K(G) of the arc-cosine kernel; the diagonal (cos t = 1) is K_ii = G_ii, set directly so that gradients stay
  finite (arccos and sqrt(1 - c^2) have infinite slope at c = 1)."""
  d = jnp.sqrt(jnp.clip(jnp.diagonal(g), 1e-30))
  norm = d[:, None] * d[None, :]
  diag = jnp.eye(g.shape[0], dtype=bool)
  c = jnp.where(diag, 0.0, jnp.clip(g / norm, -1.0 + 1e-7, 1.0 - 1e-7))
  t = jnp.arccos(c)
  k = norm * (jnp.sqrt(1 - c ** 2) + (jnp.pi - t) * c) / jnp.pi
  return jnp.where(diag, jnp.diagonal(g)[:, None] * jnp.ones_like(g), k)


def _check_gram(g, name):
  g = validation.check_floating(g, name)
  if g.ndim != 2 or g.shape[0] != g.shape[1]:
    raise ValueError(f"{name} must be a square [P, P] Gram matrix, got {name}.shape={g.shape}")
  return g


def dkm_nngp_grams(gram0: Any, depth: int) -> list:
  """The NNGP Grams G_l = K(G_{l-1}), l = 1..depth, the nu -> infinity optimum of the DKM objective (Yang et al.,
  ICML 2023, arXiv:2108.13097).

  Args:
    gram0: [P, P] input Gram matrix X X^T / d_0.
    depth: number of hidden layers L >= 1.

  Returns:
    list of L [P, P] Gram matrices.
  """
  g = _check_gram(gram0, "gram0")
  if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
    raise ValueError(f"depth must be a Python int >= 1, got {depth=}")
  out = []
  for _ in range(depth):
    g = _relu_kernel(g)
    out.append(g)
  return out


def _gauss_kl(a, b):
  p = a.shape[0]
  lb = jnp.linalg.cholesky(b)
  la = jnp.linalg.cholesky(a)
  tr = jnp.trace(jax.scipy.linalg.cho_solve((lb, True), a))
  return 0.5 * (tr - p + 2 * jnp.sum(jnp.log(jnp.diagonal(lb))) - 2 * jnp.sum(jnp.log(jnp.diagonal(la))))


def dkm_objective(grams: Sequence[Any], gram0: Any, y: Any, nu: Any, *, noise_var: float = 0.1,
                  jitter: float = 1e-6) -> jax.Array:
  """The DKM objective log P(Y | G_L) - sum_l nu_l KL(N(0, G_l) || N(0, K(G_{l-1}))) (Yang et al., ICML 2023,
  arXiv:2108.13097; K the arc-cosine ReLU kernel; formulas in the module docstring).

  Args:
    grams: L [P, P] positive-definite Gram matrices G_1..G_L.
    gram0: [P, P] input Gram matrix.
    y: [P, C] float targets (C output channels).
    nu: > 0, a number or [L] per-layer weights nu_l.
    noise_var: output noise variance > 0.
    jitter: added to the diagonal of each prior covariance K(G), >= 0.

  Returns:
    float scalar (to maximise).
  """
  g0 = _check_gram(gram0, "gram0")
  gs = [_check_gram(g, f"grams[{i}]") for i, g in enumerate(grams)]
  if not gs:
    raise ValueError("grams must hold at least one Gram matrix")
  for i, g in enumerate(gs):
    if g.shape != g0.shape:
      raise ValueError(f"grams[{i}] must have gram0's shape {g0.shape}, got {g.shape}")
  y = validation.check_floating(y, "y")
  if y.ndim != 2 or y.shape[0] != g0.shape[0]:
    raise ValueError(f"y must be [P, C] with P = {g0.shape[0]}, got y.shape={y.shape}")
  nu_valid = validation.check_positive_values(nu, "nu", (len(gs),))
  nu = jnp.broadcast_to(jnp.asarray(nu, jnp.result_type(float)), (len(gs),))
  validation.check_positive(noise_var, "noise_var")
  validation.check_nonnegative(jitter, "jitter")
  eye = jnp.eye(g0.shape[0], dtype=jnp.promote_types(g0.dtype, jnp.float32))
  kl, prev = 0.0, g0
  for l, g in enumerate(gs):
    kl = kl + nu[l] * _gauss_kl(g + jitter * eye, _relu_kernel(prev) + jitter * eye)
    prev = g
  cov = _relu_kernel(prev) + noise_var * eye
  lc = jnp.linalg.cholesky(cov)
  alpha = jax.scipy.linalg.cho_solve((lc, True), y)
  loglik = -0.5 * jnp.sum(y * alpha) - y.shape[1] * (jnp.sum(jnp.log(jnp.diagonal(lc)))
                                                       + 0.5 * y.shape[0] * jnp.log(2 * jnp.pi))
  return validation.nan_where_invalid(loglik - kl, None if nu_valid is None else jnp.all(nu_valid))


def dkm_fit(gram0: Any, y: Any, *, depth: int, nu: Any, noise_var: float = 0.1, steps: int = 2000,
            learning_rate: float = 0.01) -> list:
  """Maximise `dkm_objective` over the Grams G_l = V_l V_l^T / P (V_l a free [P, P] matrix) with Adam, starting from
  the NNGP Grams (Yang et al., ICML 2023, arXiv:2108.13097: the DKM's training is this optimisation).

  Args:
    gram0: [P, P] input Gram matrix.
    y: [P, C] float targets.
    depth: number of hidden layers L >= 1.
    nu: > 0, a number or [L] per-layer KL weights.
    noise_var: output noise variance > 0.
    steps: Adam steps >= 1.
    learning_rate: > 0.

  Returns:
    list of L optimised [P, P] Gram matrices.
  """
  g0 = _check_gram(gram0, "gram0")
  if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
    raise ValueError(f"steps must be a Python int >= 1, got {steps=}")
  validation.check_positive(learning_rate, "learning_rate")
  p = g0.shape[0]
  yv = validation.check_floating(y, "y")
  if yv.ndim != 2 or yv.shape[0] != p:
    raise ValueError(f"y must be [P, C] with P = {p}, got y.shape={yv.shape}")
  validation.check_positive(noise_var, "noise_var")
  eye = jnp.eye(p, dtype=jnp.promote_types(g0.dtype, jnp.float32))
  init = [jnp.linalg.cholesky(g + 1e-6 * eye) * jnp.sqrt(p) for g in dkm_nngp_grams(g0, depth)]
  to_grams = lambda vs: [v @ v.T / p for v in vs]
  dkm_objective(to_grams(init), g0, y, nu, noise_var=noise_var)    # validates y, nu, noise_var before the loop
  tx = optax.adam(learning_rate)
  loss = lambda vs: -dkm_objective(to_grams(vs), g0, y, nu, noise_var=noise_var)

  def step(carry, _):
    vs, state = carry
    g = jax.grad(loss)(vs)
    upd, state = tx.update(g, state, vs)
    return (optax.apply_updates(vs, upd), state), None

  (vs, _), _ = jax.lax.scan(step, (init, tx.init(init)), None, length=steps)
  return to_grams(vs)
