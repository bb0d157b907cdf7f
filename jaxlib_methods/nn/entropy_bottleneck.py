"""The factorized entropy bottleneck of learned compression, as the Entropic Student uses it for supervised feature
compression.

Paper [45]: Yoshitomo Matsubara, Ruihan Yang, Marco Levorato, Stephan Mandt, "Supervised Compression for
Resource-Constrained Edge Computing Systems", WACV 2022, arXiv:2108.11898 (Sec. 3: the student's encoder output y is
quantised and entropy-coded under a learned factorized prior; training minimises distortion + beta * rate with the
distortion a distillation MSE to the teacher's features). The prior is the one of Ballé, Minnen, Singh, Hwang,
Johnston, "Variational image compression with a scale hyperprior", ICLR 2018, arXiv:1802.01436 (App. 6.1): per
channel a learned monotone cumulative c(v) = sigmoid(f_K o ... o f_1(v)), f_k(v) = g_k(softplus(H_k) v + b_k),
g_k(u) = u + tanh(a_k) * tanh(u) (g_K the identity), so that softplus(H_k) > 0 and |tanh(a_k)| < 1 keep every f_k
increasing; the probability of an integer n is c(n + 1/2) - c(n - 1/2), hence it sums to 1 over the integers. Training
replaces rounding by additive uniform noise, y~ = y + U(-1/2, 1/2), whose density the same CDF difference evaluates;
at test time y^ = round(y). The rate is -log2 p(y^) bits. (Filters (3, 3, 3) and init_scale 10 as in CompressAI's
EntropyBottleneck; the likelihood is evaluated as |sigmoid(s u) - sigmoid(s l)| with s = -sign(l + u) for accuracy in
the tails, and bounded below by 1e-9.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlib_methods import validation

LIKELIHOOD_BOUND = 1e-9


class EntropyBottleneck(nnx.Module):
  """Factorized learned prior per channel, uniform-noise training, rounding at test (Ballé et al. 2018,
  arXiv:1802.01436, App. 6.1; the Entropic Student's bottleneck, Matsubara et al. 2022, arXiv:2108.11898, Sec. 3).

  Args:
    num_channels: C, channels on the last axis.
    filters: widths of the hidden layers of each channel's CDF network.
    init_scale: the CDF's initial scale (CompressAI's default 10).
    rngs: PRNG streams (`params`).
    param_dtype: parameter dtype.

  Shapes: __call__ y [..., C] -> (y_hat [..., C], likelihoods [..., C]); `cdf_logits` v [..., C] -> [..., C].
  """

  def __init__(self, num_channels: int, *, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0,
               rngs: nnx.Rngs, param_dtype=jnp.float32):
    if isinstance(num_channels, bool) or not isinstance(num_channels, int) or num_channels < 1:
      raise ValueError(f"num_channels must be an int >= 1, got {num_channels=!r}")
    if not all(isinstance(f, int) and not isinstance(f, bool) and f >= 1 for f in filters):
      raise ValueError(f"filters must be ints >= 1, got {filters=!r}")
    validation.check_positive(init_scale, "init_scale")
    self.num_channels = num_channels
    dims = (1,) + tuple(filters) + (1,)
    scale = init_scale ** (1.0 / (len(dims) - 1))
    self.matrices, self.biases, self.factors = nnx.List(), nnx.List(), nnx.List()
    for i in range(len(dims) - 1):
      init = float(np.log(np.expm1(1.0 / scale / dims[i + 1])))
      self.matrices.append(nnx.Param(jnp.full((num_channels, dims[i + 1], dims[i]), init, param_dtype)))
      self.biases.append(nnx.Param(jax.random.uniform(rngs.params(), (num_channels, dims[i + 1], 1), param_dtype,
                                                      -0.5, 0.5)))
      if i < len(dims) - 2:
        self.factors.append(nnx.Param(jnp.zeros((num_channels, dims[i + 1], 1), param_dtype)))

  def _check(self, v, name):
    v = validation.check_floating(v, name)
    if v.ndim < 1 or v.shape[-1] != self.num_channels:
      raise ValueError(f"{name} must be [..., C={self.num_channels}], got {name}.shape={v.shape}")
    return v

  def cdf_logits(self, v: jax.Array) -> jax.Array:
    """logit c(v) per channel, [..., C] -> [..., C] (float32 or wider)."""
    v = self._check(v, "v")
    dt = validation.compute_dtype_for(v.dtype)
    lead = v.shape[:-1]
    u = jnp.moveaxis(v.astype(dt).reshape(-1, self.num_channels), 0, -1)[:, None, :]     # [C, 1, N]
    for i, (h, b) in enumerate(zip(self.matrices, self.biases)):
      u = jnp.einsum("cij,cjn->cin", jax.nn.softplus(h[...].astype(dt)), u) + b[...].astype(dt)
      if i < len(self.factors):
        u = u + jnp.tanh(self.factors[i][...].astype(dt)) * jnp.tanh(u)
    return jnp.moveaxis(u[:, 0, :], -1, 0).reshape(lead + (self.num_channels,))

  def likelihood(self, y_hat: jax.Array) -> jax.Array:
    """p(y_hat) = c(y_hat + 1/2) - c(y_hat - 1/2) per channel, bounded below by 1e-9."""
    y_hat = self._check(y_hat, "y_hat")
    lower, upper = self.cdf_logits(y_hat - 0.5), self.cdf_logits(y_hat + 0.5)
    s = -jnp.sign(lower + upper)
    s = jnp.where(s == 0, 1.0, s)
    p = jnp.abs(jax.nn.sigmoid(s * upper) - jax.nn.sigmoid(s * lower))
    return jnp.maximum(p, LIKELIHOOD_BOUND)

  def __call__(self, y: jax.Array, *, key: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """With `key` (training): y + U(-1/2, 1/2); without: round(y). Returns (y_hat, likelihoods)."""
    y = self._check(y, "y")
    if key is None:
      y_hat = jnp.round(y)
    else:
      y_hat = y + jax.random.uniform(key, y.shape, y.dtype, -0.5, 0.5)
    return y_hat, self.likelihood(y_hat)


def rate_bits(likelihoods: jax.Array) -> jax.Array:
  """Per-example rate -sum log2 p over the last axis (Ballé et al. 2018, arXiv:1802.01436, eq. 2 in bits).

  Args:
    likelihoods: [..., C] probabilities in (0, 1] (from `EntropyBottleneck`).

  Returns:
    [...] bits.
  """
  p = validation.check_floating(likelihoods, "likelihoods")
  if p.ndim < 1:
    raise ValueError(f"likelihoods must be [..., C], got likelihoods.shape={p.shape}")
  return -jnp.sum(jnp.log2(p.astype(validation.compute_dtype_for(p.dtype))), -1)


def entropic_student_loss(student: jax.Array, teacher: jax.Array, likelihoods: jax.Array, *,
                          beta: float) -> jax.Array:
  """The Entropic Student's per-example objective ||student - stop_gradient(teacher)||^2 + beta * rate (Matsubara et
  al. 2022, arXiv:2108.11898, Sec. 3, eq. 3: distortion as a distillation MSE on the teacher's features, rate in bits).

  Args:
    student: [B, F] the student's reconstructed features.
    teacher: [B, F] the frozen teacher's features (no gradient).
    likelihoods: [B, C] bottleneck likelihoods of the example's latents.
    beta: rate weight >= 0.

  Returns:
    [B] losses (reduce outside).
  """
  s = validation.check_floating(student, "student")
  t = validation.check_floating(teacher, "teacher")
  if s.shape != t.shape or s.ndim != 2:
    raise ValueError(f"student and teacher must both be [B, F], got {s.shape=}, {t.shape=}")
  if not validation.is_traced(beta):
    validation.check_nonnegative(beta, "beta")
  rate = rate_bits(likelihoods)
  if rate.shape != s.shape[:1]:
    raise ValueError(f"likelihoods must be [B={s.shape[0]}, C], got likelihoods.shape={jnp.shape(likelihoods)}")
  return jnp.sum((s - jax.lax.stop_gradient(t)) ** 2, -1) + beta * rate


__all__ = ["EntropyBottleneck", "entropic_student_loss", "rate_bits"]
