"""FedHyper: hypergradient learning-rate schedules for federated learning (global, server-side and client-side).

Paper [57]: Ziyao Wang, Jianyu Wang, Ang Li, "FedHyper: A Universal and Robust Learning Rate Scheduler for Federated
Learning with Hypergradient Descent", ICLR 2024, arXiv:2310.03156. Official code: `ATP-1010/FedHyper`
(`src/federated_main.py`: FedHyper-G; `src/update.py`: FedHyper-CL). Hypergradient descent: Baydin et al., "Online
Learning Rate Adaptation with Hypergradient Descent", ICLR 2018, arXiv:1703.04782 (SGD-HD, Algorithm 1).

The hypergradient of the loss with respect to the learning rate of x_t = x_{t-1} - lr u_{t-1} is -<g_t, u_{t-1}>,
so one step of gradient descent on lr is

    lr_t = clip(lr_{t-1} + beta <u_t, u_{t-1}>, lo, hi),     x_{t+1} = x_t - lr_t u_t            (SGD-HD; FedHyper
                                                                                                Eq. (4)-(5))

`scale_by_hypergradient_lr` is that rule for any incoming update u (a gradient, or an optax transform's direction).
FedHyper applies it at two levels of FedAvg (McMahan et al. 2017):
  * FedHyper-G (`fedhyper_global`): the server treats the round's averaged client update Delta_t = mean_i
    (x^i_t - x_t) as a negative pseudo-gradient G_t = -Delta_t; its global learning rate follows
    lr_t = clip(lr_{t-1} + beta_g <Delta_t, Delta_{t-1}>, lo, hi) and x_{t+1} = x_t + lr_t Delta_t. With beta_g = 1,
    lr_0 = 1 and bounds [0.2, 5] this is the official code's update exactly (agg += <Delta_{t-1}, Delta_t>,
    clipped to [-0.8, 4], x <- avg + agg * Delta).
  * FedHyper-CL (`scale_by_fedhyper_client`): each client adapts its local rate every local step from the
    local hypergradient and the previous round's global update (Eq. (20) as written in the paper):
    lr_{k} = clip(lr_{k-1} + beta_l (<g_k, g_{k-1}> + (1/K) <g_k, Delta_{t-1}>), lo, hi), K clients.
    The global term limits the local rate's growth when the client follows the global descent direction
    (<g, Delta> < 0). The official code uses a multiplicative variant (lr *= min(1.1, 1 + <s_k, s_{k-1}> +
    0.1 <s_k, Delta>/K) on parameter steps s, rate clipped to [0.1, 10] x the initial one); the additive form of the
    paper is implemented here.

Bounds: the paper clips the global rate with gamma_alpha = 3 and the local rate with gamma_beta = 10; the defaults
here are the official code's [0.2, 5] (global) and [0.1, 10] x lr_0 (local).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp
import optax

from jaxlib_methods import validation
from jaxlib_methods.optim import _contracts

# Under `optax.inject_hyperparams` every numeric argument may be injected (the initial rate too: a change of the
# injected lr_0 shifts the adapted rate by the same amount, see `scale_by_hypergradient_lr`); only the client count
# is static.
SCALE_BY_HYPERGRADIENT_LR_STATIC_ARGS = ()
FEDHYPER_GLOBAL_STATIC_ARGS = ()
SCALE_BY_FEDHYPER_CLIENT_STATIC_ARGS = ("num_clients",)


class HypergradientLRState(NamedTuple):
  """count: int32 steps; learning_rate: the current rate (float32 scalar); previous: u_{t-1} (mirrors the updates,
  zeros before the first step); base_rate: the lr_0 the rate was last based on (float32 scalar).

  Wang et al., "FedHyper: A Universal and Robust Learning Rate Scheduler for Federated Learning with Hypergradient
  Descent", ICLR 2024, arXiv:2310.03156; Baydin et al., "Online Learning Rate Adaptation with Hypergradient Descent",
  ICLR 2018, arXiv:1703.04782 (SGD-HD, Algorithm 1). FedHyper Eq. (4)-(5).
  """
  count: chex.Array
  learning_rate: chex.Array
  previous: Any
  base_rate: chex.Array


def _rebased(state: Any, learning_rate: Any) -> jax.Array:
  """The previous rate shifted by the change of lr_0 since the last step: 0 unless `optax.inject_hyperparams` changed
  the injected initial rate (then the adapted rate follows it, e.g. a warmup schedule plus the hypergradient's
  accumulated correction), instead of an injected change being silently ignored after `init`."""
  return state.learning_rate + (jnp.asarray(learning_rate, jnp.float32) - state.base_rate)


def _tree_vdot(a: Any, b: Any) -> jax.Array:
  """Re <a, b> over all leaves, in float32 (complex leaves: the real inner product of C^n as R^2n, not a cast that
  would drop the imaginary parts)."""
  def one(x, y):
    ct = jnp.promote_types(jnp.result_type(x, y), jnp.float32)
    # a product and a sum, not jnp.vdot: a dot over sharded axes is an error under explicit sharding
    return jnp.sum(jnp.real(jnp.conj(x.astype(ct)) * y.astype(ct))).astype(jnp.float32)

  return sum((one(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))), jnp.zeros([], jnp.float32))


def _as_state(updates: Any, previous: Any) -> Any:
  """The updates stored as `previous`, in the dtypes `init` gave it (the params'), so the state keeps one dtype from
  init to update (e.g. float32 gradients of bfloat16 params)."""
  return jax.tree.map(lambda u, p: u.astype(p.dtype), updates, previous)


def _check_bounds(lr_bounds) -> tuple[Any, Any]:
  """(lo, hi) with 0 <= lo <= hi; traced bounds (e.g. relative to a traced initial rate) pass unchecked."""
  if len(lr_bounds) != 2:
    raise ValueError(f"lr_bounds must be (lo, hi), got {lr_bounds=}")
  if not all(validation.is_concrete_number(v) for v in lr_bounds):
    return tuple(lr_bounds)
  lo, hi = (float(v) for v in lr_bounds)
  if not (0.0 <= lo <= hi) or math.isnan(hi):
    raise ValueError(f"lr_bounds must be (lo, hi) with 0 <= lo <= hi, got {lr_bounds=}")
  return lo, hi


def _check_initial_rate(learning_rate: float, lo: Any, hi: Any) -> None:
  """lr_0 inside the clip range (else the first step would silently use the clipped rate, not lr_0)."""
  if (all(validation.is_concrete_number(v) for v in (learning_rate, lo, hi))
      and not lo <= float(learning_rate) <= hi):
    raise ValueError(f"learning_rate={learning_rate} (the initial rate lr_0) must lie in lr_bounds [{lo}, {hi}]: the "
                     "first step would clip it")


@_contracts.nan_on_invalid_injected
def scale_by_hypergradient_lr(learning_rate: float, beta: float, *, lr_bounds: tuple[float, float] = (0.0, math.inf),
                              flip_sign: bool = True) -> optax.GradientTransformation:
  """Hypergradient descent on the learning rate: lr_t = clip(lr_{t-1} + beta <u_t, u_{t-1}>), out = -lr_t u_t.

  Baydin et al. 2018 (arXiv:1703.04782, SGD-HD, Algorithm 1); FedHyper (Wang et al. 2024, arXiv:2310.03156),
  Eq. (4)-(5). The inner product runs over all leaves (one global rate). At t = 0 there is no previous update, so
  lr_0 = `learning_rate`. Under `optax.inject_hyperparams` an injected change of `learning_rate` by d shifts the
  adapted rate by d at that step (lr_t = clip(lr_{t-1} + d + beta <u_t, u_{t-1}>)): a schedule on lr_0 composes with
  the hypergradient's correction.

  Args:
    learning_rate: the initial rate lr_0 >= 0, inside `lr_bounds` (a float, or traced/injected).
    beta: the hyper learning rate beta >= 0 (0: a constant learning rate, i.e. `optax.sgd`).
    lr_bounds: (lo, hi) the rate is clipped to after every update.
    flip_sign: return -lr u (a descent step, as `optax.scale_by_learning_rate`); False returns +lr u.

  Returns:
    An `optax.GradientTransformation`; state `HypergradientLRState`, updates shaped like the inputs.

  Example:
    >>> import jax.numpy as jnp
    >>> tx = scale_by_hypergradient_lr(0.1, beta=0.01)
    >>> u, s = tx.update({"w": jnp.ones(3)}, tx.init({"w": jnp.ones(3)}))
  """
  validation.check_learning_rate(learning_rate)
  validation.check_nonnegative(beta, "beta")
  lo, hi = _check_bounds(lr_bounds)
  _check_initial_rate(learning_rate, lo, hi)
  sign = -1.0 if flip_sign else 1.0

  def init_fn(params):
    _contracts.check_inexact_leaves(params, "scale_by_hypergradient_lr")
    return HypergradientLRState(count=jnp.zeros([], jnp.int32),
                                learning_rate=jnp.asarray(learning_rate, jnp.float32),
                                previous=jax.tree.map(jnp.zeros_like, params),
                                base_rate=jnp.asarray(learning_rate, jnp.float32))

  def update_fn(updates, state, params=None):
    del params
    _contracts.check_same_tree(updates, state.previous, "scale_by_hypergradient_lr")
    h = _tree_vdot(updates, state.previous)
    lr = jnp.clip(_rebased(state, learning_rate) + beta * h, lo, hi)
    out = jax.tree.map(lambda u: (sign * lr * u).astype(u.dtype), updates)
    return out, HypergradientLRState(count=optax.safe_increment(state.count), learning_rate=lr,
                                     previous=_as_state(updates, state.previous),
                                     base_rate=jnp.asarray(learning_rate, jnp.float32))

  return optax.GradientTransformation(init_fn, update_fn)


@_contracts.nan_on_invalid_injected
def fedhyper_global(learning_rate: float = 1.0, beta: float = 1.0, *,
                    lr_bounds: tuple[float, float] = (0.2, 5.0)) -> optax.GradientTransformation:
  """FedHyper-G, the server's global learning rate: feed it the pseudo-gradient G_t = -Delta_t (Delta_t the
  average client update x^i - x of round t) and apply its output to the global model.

  lr_t = clip(lr_{t-1} + beta <Delta_t, Delta_{t-1}>, lo, hi);  x_{t+1} = x_t + lr_t Delta_t.

  Wang et al., "FedHyper", ICLR 2024, arXiv:2310.03156, the global scheduler (FedHyper-G). With the defaults it is
  the official `FedHyper-G` update (see the module docstring).

  Args:
    learning_rate: the initial global rate (FedAvg's is 1).
    beta: the hyper learning rate beta_g >= 0 (0: FedAvg with server rate `learning_rate`).
    lr_bounds: the clip range of the global rate (official code: [0.2, 5]).

  Returns:
    `scale_by_hypergradient_lr(learning_rate, beta, lr_bounds=lr_bounds)`.
  """
  return scale_by_hypergradient_lr(learning_rate, beta, lr_bounds=lr_bounds)


class FedHyperClientState(NamedTuple):
  """count: int32 local steps; learning_rate: the client's rate; previous: g_{k-1} (zeros at the first step);
  base_rate: the lr_0 the rate was last based on.

  Wang et al., "FedHyper: A Universal and Robust Learning Rate Scheduler for Federated Learning with Hypergradient
  Descent", ICLR 2024, arXiv:2310.03156 (FedHyper-CL, Eq. (20)). count, learning_rate, base_rate: scalars; previous: a
  tree like the updates.
  """
  count: chex.Array
  learning_rate: chex.Array
  previous: Any
  base_rate: chex.Array


@_contracts.nan_on_invalid_injected
def scale_by_fedhyper_client(learning_rate: float, beta: float, *, num_clients: int,
                             lr_bounds: Optional[tuple[float, float]] = None
                             ) -> optax.GradientTransformationExtraArgs:
  """FedHyper-CL, a client's local learning rate:
  lr_k = clip(lr_{k-1} + beta (<g_k, g_{k-1}> + (1/K) <g_k, Delta_{t-1}>), lo, hi); out = -lr_k g_k.

  Wang et al., "FedHyper", ICLR 2024, arXiv:2310.03156, the client-side local scheduler (FedHyper-CL, Eq. (20)).
  `update(grads, state, params=None, *, global_update=Delta_{t-1})`: the previous round's global model update
  (x_t - x_{t-1}, a params-shaped tree; zeros or None in round 0). Reset the state with `init` at each round's
  start (the official client restarts from the initial rate; carry `learning_rate` over to keep it).

  Args:
    learning_rate: the initial local rate lr_0 > 0.
    beta: the hyper learning rate beta_l >= 0 (0: plain local SGD).
    num_clients: K, the clients per round (> 0).
    lr_bounds: the clip range (default the official code's [0.1 lr_0, 10 lr_0]).

  Returns:
    An `optax.GradientTransformationExtraArgs`; state `FedHyperClientState`.
  """
  validation.check_positive(learning_rate, "learning_rate")
  validation.check_nonnegative(beta, "beta")
  num_clients = _contracts.static_int(num_clients, "num_clients", "SCALE_BY_FEDHYPER_CLIENT_STATIC_ARGS")
  lo, hi = _check_bounds((0.1 * learning_rate, 10.0 * learning_rate) if lr_bounds is None else lr_bounds)
  _check_initial_rate(learning_rate, lo, hi)

  def init_fn(params):
    _contracts.check_inexact_leaves(params, "scale_by_fedhyper_client")
    return FedHyperClientState(count=jnp.zeros([], jnp.int32), learning_rate=jnp.asarray(learning_rate, jnp.float32),
                               previous=jax.tree.map(jnp.zeros_like, params),
                               base_rate=jnp.asarray(learning_rate, jnp.float32))

  def update_fn(updates, state, params=None, *, global_update=None, **extra):
    del params, extra
    _contracts.check_same_tree(updates, state.previous, "scale_by_fedhyper_client")
    h = _tree_vdot(updates, state.previous)
    if global_update is not None:
      _contracts.check_same_tree(global_update, state.previous, "scale_by_fedhyper_client", what="global_update")
      h = h + _tree_vdot(updates, global_update) / num_clients
    lr = jnp.clip(_rebased(state, learning_rate) + beta * h, lo, hi)
    out = jax.tree.map(lambda g: (-lr * g).astype(g.dtype), updates)
    return out, FedHyperClientState(count=optax.safe_increment(state.count), learning_rate=lr,
                                    previous=_as_state(updates, state.previous),
                                    base_rate=jnp.asarray(learning_rate, jnp.float32))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


scale_by_hypergradient_lr.STATIC_ARGS = SCALE_BY_HYPERGRADIENT_LR_STATIC_ARGS
fedhyper_global.STATIC_ARGS = FEDHYPER_GLOBAL_STATIC_ARGS
scale_by_fedhyper_client.STATIC_ARGS = SCALE_BY_FEDHYPER_CLIENT_STATIC_ARGS

__all__ = ["FEDHYPER_GLOBAL_STATIC_ARGS", "FedHyperClientState", "HypergradientLRState",
           "SCALE_BY_FEDHYPER_CLIENT_STATIC_ARGS", "SCALE_BY_HYPERGRADIENT_LR_STATIC_ARGS", "fedhyper_global",
           "scale_by_fedhyper_client", "scale_by_hypergradient_lr"]
