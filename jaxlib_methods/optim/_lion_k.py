"""Lion-K: Lion with the sign replaced by the (sub)gradient of a convex function K.

Paper [193]: Lizhang Chen, Bo Liu, Kaizhao Liang, Qiang Liu, "Lion Secretly Solves Constrained Optimization: As
Lyapunov Predicts", ICLR 2024, arXiv:2310.05898.

The discrete Lion-K update with decoupled weight decay (the paper writes it with the *negative* momentum
M = -m; the form below is the same update with m the usual EMA of gradients and K symmetric):

    c_t     = b1 * m_t + (1 - b1) * g_t
    x_{t+1} = x_t - eta * (grad_K(c_t) + lambda * x_t)
    m_{t+1} = b2 * m_t + (1 - b2) * g_t

With K = ||.||_1 (grad_K = sign) this is Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"),
and the paper shows it solves min f(x) s.t. ||x||_inf <= 1/lambda. In general Lion-K solves
min_x f(x) + (1/lambda) K*(lambda x) (up to the paper's alpha, gamma constants), K* the convex conjugate.

Each K below is applied **per leaf** (per parameter tensor): for the non-separable norms (l2, lp, l_inf) the norm
is taken over one tensor, as optax's per-leaf transforms do. `K_FUNCTIONS` also carries K and, where it has a
closed form, its conjugate K*, which the Lyapunov analysis in `experiments/lion_k_constrained.py` uses.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional, Union

import chex
import jax
import jax.numpy as jnp
import optax

from jaxlib_methods import validation
from jaxlib_methods.optim import _contracts

SCALE_BY_LION_K_STATIC_ARGS = ("mu_dtype", "grad_K")
LION_K_STATIC_ARGS = SCALE_BY_LION_K_STATIC_ARGS + ("mask",)

GradK = Callable[[jax.Array], jax.Array]


# ----------------------------------------------------------------------------------------------------------------------
# The paper's examples of K: grad K (used by the optimizer), K itself and its conjugate K* (used by the analysis).
# ----------------------------------------------------------------------------------------------------------------------

def _sq_norm(x: jax.Array) -> jax.Array:
  """sum |x_i|^2 over the whole tensor (no flattening, so a sharded tensor stays sharded)."""
  a = jnp.abs(x)
  return jnp.sum(a * a)


def grad_l1(x: jax.Array) -> jax.Array:
  """grad K for K(x) = ||x||_1: sign(x) (Lion). Shape-preserving, any shape; for complex x, x / |x| (the gradient of
  sum |x_i| with each complex entry seen as a point of R^2, as `optax.lion` does).

  x: any shape; returns an array of the same shape and dtype. One of the K functions of Chen et al., "Lion Secretly
  Solves Constrained Optimization: As Lyapunov Predicts", ICLR 2024, arXiv:2310.05898 (the grad_K that replaces the sign
  of Lion).
  """
  return jnp.sign(x)


def grad_half_squared_l2(x: jax.Array) -> jax.Array:
  """grad K for K(x) = ||x||^2 / 2: the identity (Lion-K becomes Polyak/Nesterov momentum + l2 decay).

  x: any shape; returns an array of the same shape and dtype. One of the K functions of Chen et al., "Lion Secretly
  Solves Constrained Optimization: As Lyapunov Predicts", ICLR 2024, arXiv:2310.05898 (the grad_K that replaces the sign
  of Lion).
  """
  return x


def grad_l2(x: jax.Array) -> jax.Array:
  """grad K for K(x) = ||x||_2 over the whole tensor: x / ||x||_2 (0 at x = 0). Normalised momentum.

  x: any shape; returns an array of the same shape and dtype. One of the K functions of Chen et al., "Lion Secretly
  Solves Constrained Optimization: As Lyapunov Predicts", ICLR 2024, arXiv:2310.05898 (the grad_K that replaces the sign
  of Lion).
  """
  norm = jnp.sqrt(_sq_norm(x))
  safe = jnp.where(norm == 0, jnp.ones_like(norm), norm)
  return jnp.where(norm == 0, jnp.zeros_like(x), x / safe)  # a NaN norm propagates


def grad_lp(p: float) -> GradK:
  """grad K for K(x) = ||x||_p, p > 1: sign(x) |x|^(p-1) / ||x||_p^(p-1) (0 at x = 0). Constraint: l_q ball.

  A NaN entry makes the whole result NaN (never a plausible finite direction); a 0-size tensor maps to itself.

  Returns grad K, a function mapping x of any shape to an array of the same shape and dtype. One of the K functions
  of Chen et al., "Lion Secretly Solves Constrained Optimization: As Lyapunov Predicts", ICLR 2024, arXiv:2310.05898
  (the grad_K that replaces the sign of Lion).
  """
  validation.check_in_interval(p, "p", 1.0, float("inf"), closed_low=False, closed_high=False)

  def grad(x: jax.Array) -> jax.Array:
    if x.size == 0:
      return x
    a = jnp.abs(x)
    amax = jnp.max(a)
    # Scale by the max-magnitude entry first so |x|^p cannot overflow; the ratio is scale invariant.
    safe_max = jnp.where(amax == 0, jnp.ones_like(amax), amax)
    r = a / safe_max
    norm = jnp.sum(r ** p) ** (1.0 / p)
    out = jnp.sign(x) * (r ** (p - 1.0) / norm ** (p - 1.0)).astype(x.dtype)
    out = jnp.where(amax == 0, jnp.zeros_like(x), out).astype(x.dtype)
    return jnp.where(jnp.isnan(amax), jnp.full_like(x, jnp.nan), out)

  return grad


def _flat_index(x: jax.Array) -> jax.Array:
  """Each entry's row-major flat index, shaped (and sharded) like x, without a reshape."""
  idx = jnp.zeros_like(x, dtype=jnp.int32)
  stride = 1
  for d in reversed(range(x.ndim)):
    idx = idx + stride * jax.lax.broadcasted_iota(jnp.int32, x.shape, d)
    stride *= x.shape[d]
  return idx


def grad_linf(x: jax.Array) -> jax.Array:
  """grad K for K(x) = ||x||_inf: sign(x_i*) e_i* at the first (row-major) largest-magnitude entry i* (a
  subgradient). Written without flattening, so a sharded tensor stays sharded; NaN anywhere gives all NaN; a 0-size
  tensor maps to itself.

  x: any shape; returns an array of the same shape and dtype. One of the K functions of Chen et al., "Lion Secretly
  Solves Constrained Optimization: As Lyapunov Predicts", ICLR 2024, arXiv:2310.05898 (the grad_K that replaces the sign
  of Lion).
  """
  if x.size == 0:
    return x
  if x.size >= 2 ** 31:
    raise ValueError(f"grad_linf indexes entries with int32; a leaf of {x.size} entries is too large")
  a = jnp.abs(x)
  amax = jnp.max(a)
  idx = _flat_index(x)
  first = jnp.min(jnp.where(a == amax, idx, jnp.full_like(idx, x.size)))
  out = jnp.where(idx == first, jnp.sign(x), jnp.zeros_like(x))
  return jnp.where(jnp.isnan(amax), jnp.full_like(x, jnp.nan), out)


def grad_huber(e: float) -> GradK:
  """grad K for K(x) = sum_i Huber_e(x_i): clip(x / e, -1, 1) (complex: x/e shrunk to modulus <= 1).

  Returns grad K, a function mapping x of any shape to an array of the same shape and dtype. One of the K functions
  of Chen et al., "Lion Secretly Solves Constrained Optimization: As Lyapunov Predicts", ICLR 2024, arXiv:2310.05898
  (the grad_K that replaces the sign of Lion).
  """
  validation.check_positive(e, "e")

  def grad(x):
    if jnp.iscomplexobj(x):
      return (x / e) / jnp.maximum(1.0, jnp.abs(x) / e)
    return jnp.clip(x / e, -1.0, 1.0)

  return grad


def grad_dead_zone(e: float) -> GradK:
  """grad K for K(x) = sum_i max(|x_i| - e, 0): sign(x) * 1[|x| > e] (sign with a dead zone).

  Returns grad K, a function mapping x of any shape to an array of the same shape and dtype. One of the K functions
  of Chen et al., "Lion Secretly Solves Constrained Optimization: As Lyapunov Predicts", ICLR 2024, arXiv:2310.05898
  (the grad_K that replaces the sign of Lion).
  """
  validation.check_nonnegative(e, "e")
  return lambda x: jnp.where((jnp.abs(x) > e) | jnp.isnan(x), jnp.sign(x), jnp.zeros_like(x))


def grad_relativistic(e: float) -> GradK:
  """grad K for K(x) = sum_i sqrt(|x_i|^2 + e^2) (the 'relativistic' kinetic energy): x / sqrt(|x|^2 + e^2).

  Returns grad K, a function mapping x of any shape to an array of the same shape and dtype. One of the K functions
  of Chen et al., "Lion Secretly Solves Constrained Optimization: As Lyapunov Predicts", ICLR 2024, arXiv:2310.05898
  (the grad_K that replaces the sign of Lion).
  """
  validation.check_positive(e, "e")
  return lambda x: x / jnp.sqrt(jnp.square(jnp.abs(x)) + e * e)


@dataclasses.dataclass(frozen=True)
class KFunction:
  """A convex K of the paper's table: its value, (sub)gradient, and convex conjugate K* where closed form.

  `conjugate(y)` returns +inf outside dom K* (e.g. ||y||_inf > 1 for K = l1), as the indicator functions do.

  One of the K functions of Chen et al., "Lion Secretly Solves Constrained Optimization: As Lyapunov Predicts",
  ICLR 2024, arXiv:2310.05898. `value` maps a tensor of any shape to a scalar, `grad` maps it to the same shape,
  `conjugate` maps a tensor of any shape to a scalar.
  """
  name: str
  value: Callable[[jax.Array], jax.Array]
  grad: GradK
  conjugate: Optional[Callable[[jax.Array], jax.Array]]
  constraint: str


def _indicator(ok: jax.Array, dtype) -> jax.Array:
  return jnp.where(ok, jnp.zeros((), dtype), jnp.full((), jnp.inf, dtype))


def _tol(y: jax.Array) -> float:
  # Feasibility tolerance for indicator conjugates (a point on the boundary in float arithmetic is feasible).
  return 1e-6 if y.dtype == jnp.float32 else 1e-12


def make_k_function(name: str, *, e: float = 1.0, p: float = 3.0) -> KFunction:
  """The paper's K examples by name: 'l1', 'l2', 'lp', 'linf', 'huber', 'dead_zone', 'relativistic', 'half_l2sq'.

  The K functions of Chen et al., "Lion Secretly Solves Constrained Optimization: As Lyapunov Predicts", ICLR 2024,
  arXiv:2310.05898. Returns a `KFunction` whose `grad` is shape-preserving and whose `value` / `conjugate` return
  scalars.

  Args:
    name: which K.
    e: the smoothing / dead-zone width for 'huber', 'dead_zone' and 'relativistic'.
    p: the exponent for 'lp' (p > 1; the constraint is then the l_q ball, 1/p + 1/q = 1).
  """
  if name == "l1":
    return KFunction("l1", lambda x: jnp.sum(jnp.abs(x)), grad_l1,
                     lambda y: _indicator(jnp.max(jnp.abs(y)) <= 1 + _tol(y), y.dtype), "||x||_inf <= 1/lambda")
  if name == "half_l2sq":
    return KFunction("half_l2sq", lambda x: 0.5 * _sq_norm(x), grad_half_squared_l2,
                     lambda y: 0.5 * jnp.sum(y * y), "l2 regularisation (lambda/2)||x||^2")
  if name == "l2":
    return KFunction("l2", lambda x: jnp.sqrt(_sq_norm(x)), grad_l2,
                     lambda y: _indicator(jnp.sqrt(jnp.sum(y * y)) <= 1 + _tol(y), y.dtype), "||x||_2 <= 1/lambda")
  if name == "lp":
    q = p / (p - 1.0)
    return KFunction("lp", lambda x: jnp.sum(jnp.abs(x) ** p) ** (1 / p), grad_lp(p),
                     lambda y: _indicator(jnp.sum(jnp.abs(y) ** q) ** (1 / q) <= 1 + _tol(y), y.dtype),
                     f"||x||_q <= 1/lambda, q={q:g}")
  if name == "linf":
    return KFunction("linf", lambda x: jnp.max(jnp.abs(x)), grad_linf,
                     lambda y: _indicator(jnp.sum(jnp.abs(y)) <= 1 + _tol(y), y.dtype), "||x||_1 <= 1/lambda")
  if name == "huber":
    def huber(x):
      a = jnp.abs(x)
      return jnp.sum(jnp.where(a <= e, 0.5 * a * a / e, a - 0.5 * e))
    return KFunction("huber", huber, grad_huber(e),
                     lambda y: 0.5 * e * jnp.sum(y * y) + _indicator(jnp.max(jnp.abs(y)) <= 1 + _tol(y), y.dtype),
                     "box ||x||_inf <= 1/lambda plus l2 regularisation")
  if name == "dead_zone":
    return KFunction("dead_zone", lambda x: jnp.sum(jnp.maximum(jnp.abs(x) - e, 0.0)), grad_dead_zone(e),
                     lambda y: e * jnp.sum(jnp.abs(y)) + _indicator(jnp.max(jnp.abs(y)) <= 1 + _tol(y), y.dtype),
                     "box ||x||_inf <= 1/lambda plus l1 regularisation")
  if name == "relativistic":
    def conj(y):
      inside = jnp.max(jnp.abs(y)) <= 1
      val = -e * jnp.sum(jnp.sqrt(jnp.clip(1 - y * y, 0.0, None)))
      return jnp.where(inside, val, jnp.inf)
    return KFunction("relativistic", lambda x: jnp.sum(jnp.sqrt(jnp.abs(x) ** 2 + e * e)), grad_relativistic(e), conj,
                     "box ||x||_inf <= 1/lambda, smoothed")
  raise ValueError(f"unknown K {name=!r}; choose one of {sorted(K_NAMES)}")


K_NAMES = ("l1", "l2", "lp", "linf", "huber", "dead_zone", "relativistic", "half_l2sq")


def _resolve_grad_k(grad_K: Union[str, GradK]) -> GradK:
  if callable(grad_K):
    return grad_K
  if isinstance(grad_K, str):
    return make_k_function(grad_K).grad
  raise TypeError(f"grad_K must be a callable or one of {K_NAMES}, got {grad_K=!r}")


# ----------------------------------------------------------------------------------------------------------------------
# The transforms.
# ----------------------------------------------------------------------------------------------------------------------

class ScaleByLionKState(NamedTuple):
  """State of `scale_by_lion_k`: the step count and the gradient EMA m (same tree as the params).

  Chen et al., "Lion Secretly Solves Constrained Optimization: As Lyapunov Predicts", ICLR 2024, arXiv:2310.05898.

  count: int32 scalar. mu: the EMA m, a tree like the params (each leaf the shape of its parameter).
  """
  count: chex.Array  # int32 scalar
  mu: optax.Updates


@_contracts.nan_on_invalid_injected
def scale_by_lion_k(
    b1: float = 0.9,
    b2: float = 0.99,
    mu_dtype: Optional[Any] = None,
    *,
    grad_K: Union[str, GradK] = "l1",
) -> optax.GradientTransformation:
  """The Lion-K direction grad_K(b1 m + (1 - b1) g), with m <- b2 m + (1 - b2) g (no learning rate, no decay).

  From Chen, Liu, Liang, Liu, "Lion Secretly Solves Constrained Optimization: As Lyapunov Predicts" (2023,
  arXiv:2310.05898), the discrete Lion-K update. With `grad_K="l1"` (sign) it is `optax.scale_by_lion`.

  Args:
    b1: interpolation between the momentum and the current gradient in the look-ahead c (paper's beta_1), in [0, 1].
    b2: EMA decay of the momentum m (paper's beta_2), in [0, 1].
    mu_dtype: dtype of m; None keeps the params' dtype (as optax does).
    grad_K: a name from `K_NAMES` (default parameters) or any callable mapping one tensor to a tensor of the same
      shape, e.g. `grad_huber(0.1)`, `grad_lp(3.0)`. Applied per leaf. Complex leaves: each entry is a point of R^2
      (the named K use |x_i|), as `optax.lion` treats them.

  With `optax.inject_hyperparams`, pass `static_args=SCALE_BY_LION_K_STATIC_ARGS` (a callable `grad_K` or a dtype
  object would be taken for a schedule). Integer leaves raise TypeError naming the leaf.

  Returns:
    An `optax.GradientTransformation`; updates have the shapes of the gradients.
  """
  validation.check_in_interval(b1, "b1", 0.0, 1.0)
  validation.check_in_interval(b2, "b2", 0.0, 1.0)
  constant = "LION_K_STATIC_ARGS (SCALE_BY_LION_K_STATIC_ARGS for scale_by_lion_k)"
  grad_fn = _resolve_grad_k(_contracts.static_choice(grad_K, "grad_K", constant))
  mu_dtype = optax._src.utils.canonicalize_dtype(_contracts.static_choice(mu_dtype, "mu_dtype", constant))

  def init_fn(params):
    _contracts.check_inexact_leaves(params, "lion_k")
    mu = optax.tree.zeros_like(params, dtype=mu_dtype)
    return ScaleByLionKState(count=jnp.zeros([], jnp.int32), mu=mu)

  def update_fn(updates, state, params=None):
    del params
    _contracts.check_same_tree(updates, state.mu, "lion_k")
    _contracts.check_inexact_leaves(updates, "lion_k", what="gradients")
    # c_t = b1 m_t + (1 - b1) g_t, written exactly as optax.scale_by_lion so that K = l1 matches it bit for bit.
    new_updates = jax.tree.map(lambda g, m: grad_fn((1.0 - b1) * g + b1 * m).astype(g.dtype), updates, state.mu)
    mu = optax.tree.update_moment(updates, state.mu, b2, 1)
    mu = optax.tree.cast(mu, mu_dtype) if mu_dtype is not None else jax.tree.map(
        lambda m, m0: m.astype(m0.dtype), mu, state.mu)
    return new_updates, ScaleByLionKState(count=optax.safe_increment(state.count), mu=mu)

  return optax.GradientTransformation(init_fn, update_fn)


@_contracts.nan_on_invalid_injected
def lion_k(
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.99,
    mu_dtype: Optional[Any] = None,
    weight_decay: float = 1e-3,
    mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None,
    *,
    grad_K: Union[str, GradK] = "l1",
) -> optax.GradientTransformation:
  """Lion-K: x <- x - eta (grad_K(b1 m + (1 - b1) g) + lambda x), m <- b2 m + (1 - b2) g.

  Chen, Liu, Liang, Liu, "Lion Secretly Solves Constrained Optimization: As Lyapunov Predicts" (ICLR 2024,
  arXiv:2310.05898): the discrete Lion-K update with decoupled weight decay lambda = `weight_decay`, step size
  eta = `learning_rate`. Chained exactly as `optax.lion` (direction, then `add_decayed_weights`, then the
  learning rate), so `lion_k(..., grad_K="l1")` equals `optax.lion(...)` to the last bit. Weight decay is applied
  outside grad_K, as the paper's analysis (and Lion's authors) require: with K = l1 the iterate is driven into,
  and kept in, the box ||x||_inf <= 1/lambda.

  Practical note (Lion's authors): use a learning rate 3-10x smaller and a weight decay 3-10x larger than for
  AdamW, keeping lr * wd similar.

  Args:
    learning_rate: eta, a constant >= 0 or an optax schedule.
    b1, b2: the paper's beta_1 (look-ahead) and beta_2 (momentum EMA), each in [0, 1].
    mu_dtype: dtype of the momentum m (None: the params' dtype).
    weight_decay: lambda >= 0, decoupled; the constraint radius is 1/lambda.
    mask: which leaves get weight decay (as in `optax.add_decayed_weights`).
    grad_K: a name from `K_NAMES` or a callable (see `scale_by_lion_k`).

  With `optax.inject_hyperparams`, pass `static_args=LION_K_STATIC_ARGS` (also `lion_k.STATIC_ARGS`).

  Returns:
    An `optax.GradientTransformation` (state: (ScaleByLionKState, EmptyState, EmptyState)).

  Example:
    >>> import jax.numpy as jnp, optax
    >>> tx = lion_k(1e-2, weight_decay=0.5, grad_K="huber")
    >>> params = {"w": jnp.ones(3)}
    >>> updates, state = tx.update({"w": jnp.ones(3)}, tx.init(params), params)
  """
  validation.check_learning_rate(learning_rate)
  validation.check_nonnegative(weight_decay, "weight_decay")
  mask = _contracts.decay_mask(mask, "mask", "LION_K_STATIC_ARGS")
  return optax.chain(
      scale_by_lion_k(b1=b1, b2=b2, mu_dtype=mu_dtype, grad_K=grad_K),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )


scale_by_lion_k.STATIC_ARGS = SCALE_BY_LION_K_STATIC_ARGS
lion_k.STATIC_ARGS = LION_K_STATIC_ARGS
