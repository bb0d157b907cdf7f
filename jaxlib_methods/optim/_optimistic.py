"""Optimistic online mirror descent (Euclidean) for the stochastically extended adversarial (SEA) model.

Paper [209]: Sijia Chen, Yu-Jie Zhang, Wei-Wei Tu, Peng Zhao, Lijun Zhang, "Optimistic Online Mirror Descent for
Bridging Stochastic and Adversarial Online Convex Optimization", ICML 2023 / JMLR 2024, arXiv:2302.04552.

Optimistic OMD with the Euclidean regulariser psi(x) = ||x||^2 / 2 on a domain X (here R^d or the l2 ball of radius
R, taken over the whole parameter tree), hint M_t and step size eta_t keeps a second sequence x_hat:

    x_t         = Pi_X[x_hat_t - eta_t M_t]              (the point played at round t)
    x_hat_{t+1} = Pi_X[x_hat_t - eta_t g_t]              (g_t = grad f_t(x_t), the observed gradient)

with the paper's hint M_t = g_{t-1} (the last gradient, M_1 = 0). Its SEA guarantees (abstract of arXiv:2302.04552):
expected regret O(sqrt(sigma^2_{1:T}) + sqrt(Sigma^2_{1:T})) for convex, smooth expected losses, and
O((sigma^2_max + Sigma^2_max)/lambda * log(...(sigma^2_{1:T} + Sigma^2_{1:T}))) for lambda-strongly convex ones, where
sigma^2_{1:T} is the cumulative stochastic variance and Sigma^2_{1:T} the cumulative adversarial variation of the
gradients. For the convex case the step size is self-confident, eta_t = min{cap, D / sqrt(delta + sum_{s<t}
||g_s - M_s||^2)} (`diameter` = D, `learning_rate` = the cap, 1/(4L) for L-smooth losses).

Unconstrained with a constant step eta, x_{t+1} = x_t - eta (2 g_t - g_{t-1}): every update from the second on is
exactly that of `optax.optimistic_gradient_descent(eta, alpha=1, beta=1)` (tested); the first differs because optax
takes g_0 = g_1 (its issue #1082) where the paper's hint is M_1 = 0 (our first update is -2 eta g_1, optax's
-eta g_1). With a schedule or a projection the two differ (optax scales the optimistic gradient by the current rate).

As an optax transform the played point x_t is the params; the state keeps x_hat_t - x_t (zeros at `init`, since
x_1 = x_hat_1 when M_1 = 0), so it mirrors the params, keeps their dtype and sharding, and `init` works on abstract
`jax.ShapeDtypeStruct` params. `update` needs the params.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from jaxlib_methods import validation
from jaxlib_methods.optim import _contracts

OPTIMISTIC_OMD_STATIC_ARGS: tuple = ()
HINTS = ("last_gradient", "none")


class OptimisticOMDState(NamedTuple):
  """State of `optimistic_omd`.

  Chen et al., "Optimistic Online Mirror Descent for Bridging Stochastic and Adversarial Online Convex Optimization",
  ICML 2023 / JMLR 2024, arXiv:2302.04552.

  Attributes:
    count: int32 scalar, the number of updates so far (t - 1 at round t).
    hat_offset: x_hat_t - x_t, a tree like the params (their dtype).
    hint: the hint M_t used to play x_t (the last gradient g_{t-1}; zeros at t = 1), a tree like the params.
    hint_error_sq: scalar, sum_{s < t} ||g_s - M_s||^2 (the self-confident step size's accumulator), in the params'
      widest real dtype promoted to at least float32 (float64 for float64 params).
  """
  count: jax.Array
  hat_offset: optax.Updates
  hint: optax.Updates
  hint_error_sq: jax.Array


def _acc_dtype(tree: Any) -> Any:
  """The scalar dtype of norms and step sizes: the widest real dtype of the leaves, at least float32."""
  dt = jnp.dtype(jnp.float32)
  for x in jax.tree.leaves(tree):
    dt = jnp.promote_types(dt, _real(x.dtype))
  return dt


def _sq_norm(tree: Any, dtype: Any) -> jax.Array:
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return jnp.zeros([], dtype)
  return sum(jnp.sum(jnp.square(jnp.abs(x)).astype(dtype)) for x in leaves)


def _project_ball(tree: Any, radius: Any, dtype: Any) -> Any:
  """Euclidean projection of the whole tree onto {x : ||x||_2 <= radius} (None: no projection)."""
  if radius is None:
    return tree
  norm = jnp.sqrt(_sq_norm(tree, dtype))
  scale = jnp.minimum(1.0, jnp.asarray(radius, dtype) / jnp.maximum(norm, jnp.finfo(dtype).tiny))
  return jax.tree.map(lambda x: (x * scale.astype(_real(x.dtype))).astype(x.dtype), tree)


def _real(dtype):
  dtype = jnp.dtype(dtype)
  return jnp.finfo(dtype).dtype if jnp.issubdtype(dtype, jnp.complexfloating) else dtype


@_contracts.nan_on_invalid_injected
def optimistic_omd(
    learning_rate: optax.ScalarOrSchedule,
    *,
    radius: Optional[float] = None,
    diameter: Optional[float] = None,
    delta: float = 1.0,
    hint: Literal["last_gradient", "none"] = "last_gradient",
) -> optax.GradientTransformation:
  """Optimistic online mirror descent with the Euclidean regulariser (Chen et al. 2023, arXiv:2302.04552, Alg. 1).

  Round t (t = 1, 2, ...; `count` = t - 1), with the params x_t and the observed gradient g_t:

      x_hat_{t+1} = Pi_X[x_hat_t - eta_t g_t],   M_{t+1} = g_t (hint="last_gradient") or 0 (hint="none"),
      x_{t+1}     = Pi_X[x_hat_{t+1} - eta_{t+1} M_{t+1}],      updates = x_{t+1} - x_t,

      eta_t = learning_rate(t - 1)                                          (diameter=None), or
      eta_t = min{learning_rate(t - 1), D / sqrt(delta + sum_{s<t} ||g_s - M_s||^2)}   (diameter=D, self-confident),

  X = R^d (radius=None) or the l2 ball {||x|| <= R} of the whole parameter tree (x_1 must lie in it).
  hint="none" is plain online gradient descent (the non-optimistic baseline). Unconstrained with a constant rate,
  every update after the first equals `optax.optimistic_gradient_descent(learning_rate, alpha=1.0, beta=1.0)`'s
  (optax takes g_0 = g_1 at the first step, the paper M_1 = 0).

  Args:
    learning_rate: eta (a constant >= 0 or an optax schedule of the step count); with `diameter`, the cap on the
      self-confident step (the paper's 1/(4L) for L-smooth losses).
    radius: R > 0 of the domain's l2 ball (None: unconstrained).
    diameter: D > 0 of the self-confident step size (None: use `learning_rate` as is).
    delta: delta > 0 in the self-confident step size.
    hint: "last_gradient" (M_t = g_{t-1}, the paper's optimism) or "none" (M_t = 0).

  Returns:
    An optax GradientTransformation (state `OptimisticOMDState`); `update(grads, state, params)` needs the params;
    updates have the params' shapes and dtypes.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> tx = optimistic_omd(0.1)
    >>> x = {"w": jnp.ones(2)}
    >>> u, s = tx.update({"w": jnp.ones(2)}, tx.init(x), x)
    >>> [round(float(v), 6) for v in u["w"]]
    [-0.2, -0.2]

  References:
    Chen, Zhang, Tu, Zhao, Zhang. "Optimistic Online Mirror Descent for Bridging Stochastic and Adversarial Online
    Convex Optimization". ICML 2023, arXiv:2302.04552 (Alg. 1; Thms. for convex and strongly convex losses).
    Sachs, Hadiji, van Erven, Guzman. "Between Stochastic and Adversarial Online Convex Optimization: Improved Regret
    Bounds via Smoothness". NeurIPS 2022 (the SEA model).
  """
  validation.check_learning_rate(learning_rate)
  if radius is not None:
    validation.check_positive(radius, "radius")
  if diameter is not None:
    validation.check_positive(diameter, "diameter")
  validation.check_positive(delta, "delta")
  if not isinstance(hint, str) or hint not in HINTS:
    raise ValueError(f"hint must be one of {HINTS}, got {hint=!r}")
  optimistic = hint == "last_gradient"

  def eta_at(count, err_sq):
    dtype = err_sq.dtype
    lr = learning_rate(count) if callable(learning_rate) else learning_rate
    lr = jnp.asarray(lr, dtype)
    if diameter is None:
      return lr
    adaptive = jnp.asarray(diameter, dtype) / jnp.sqrt(jnp.asarray(delta, dtype) + err_sq)
    return jnp.minimum(lr, adaptive)

  def init_fn(params):
    _contracts.check_inexact_leaves(params, "optimistic_omd")
    return OptimisticOMDState(count=jnp.zeros([], jnp.int32), hat_offset=optax.tree.zeros_like(params),
                              hint=optax.tree.zeros_like(params), hint_error_sq=jnp.zeros([], _acc_dtype(params)))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("optimistic_omd needs the parameters (the played point x_t): call update(grads, state, "
                       "params)")
    _contracts.check_same_tree(updates, state.hat_offset, "optimistic_omd")
    _contracts.check_same_tree(params, state.hat_offset, "optimistic_omd", what="the params given to init")
    _contracts.check_inexact_leaves(updates, "optimistic_omd", what="gradients")
    grads = jax.tree.map(lambda g, p: g.astype(p.dtype), updates, params)
    acc = state.hint_error_sq.dtype
    eta_t = eta_at(state.count, state.hint_error_sq)
    x_hat = jax.tree.map(lambda p, d: p + d, params, state.hat_offset)
    x_hat_next = _project_ball(
        jax.tree.map(lambda xh, g: xh - eta_t.astype(_real(g.dtype)) * g, x_hat, grads), radius, acc)
    err_sq = state.hint_error_sq + _sq_norm(jax.tree.map(lambda g, m: g - m, grads, state.hint), acc)
    new_hint = grads if optimistic else jax.tree.map(jnp.zeros_like, grads)
    eta_next = eta_at(optax.safe_increment(state.count), err_sq)
    x_next = _project_ball(
        jax.tree.map(lambda xh, m: xh - eta_next.astype(_real(m.dtype)) * m, x_hat_next, new_hint), radius, acc)
    new_updates = jax.tree.map(lambda xn, p: (xn - p).astype(p.dtype), x_next, params)
    hat_offset = jax.tree.map(lambda xh, xn, d: (xh - xn).astype(d.dtype), x_hat_next, x_next, state.hat_offset)
    new_state = OptimisticOMDState(count=optax.safe_increment(state.count), hat_offset=hat_offset,
                                   hint=jax.tree.map(lambda m, h: m.astype(h.dtype), new_hint, state.hint),
                                   hint_error_sq=err_sq.astype(acc))
    return new_updates, new_state

  return optax.GradientTransformation(init_fn, update_fn)


optimistic_omd.STATIC_ARGS = OPTIMISTIC_OMD_STATIC_ARGS

__all__ = ["HINTS", "OPTIMISTIC_OMD_STATIC_ARGS", "OptimisticOMDState", "optimistic_omd"]
