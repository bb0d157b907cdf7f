"""Target-based surrogates and SSO: m cheap parameter updates per expensive gradient, taken in the target space.

Paper [187]: Jonathan Wilder Lavington, Sharan Vaswani, Reza Babanezhad, Mark Schmidt, Nicolas Le Roux, "Target-based
Surrogates for Stochastic Optimization", ICML 2023, arXiv:2302.02607.

The objective is a composition L(f(theta)): a model f maps the parameters to targets z = f(theta) (e.g. the logits
of a minibatch), and L, the loss in target space, is the expensive part (a simulator, an RL return, ...). At step
t one expensive gradient grad_z L(z_t), z_t = f(theta_t), builds the surrogate

    g_t(theta) = L(z_t) + <grad_z L(z_t), f(theta) - z_t> + ||f(theta) - z_t||^2 / (2 eta)

which, when L is (1/eta)-smooth in z, majorises the loss: L(f(theta)) <= g_t(theta) for every theta, with equality
at theta_t (so any decrease of g_t decreases L: majorisation-minimisation). SSO (stochastic surrogate optimisation)
uses a minibatch's L and z, and takes m steps of any optax transform on g_t, each needing only f and its
vector-Jacobian products; it is projected SGD in the target space (z_{t+1} ~ Pi_{f(Theta)}[z_t - eta grad L(z_t)]).

The official code (github.com/WilderLavington/Target-Based-Surrogates-For-Stochastic-Optimization,
`optimizers/sgd_fmdopt.py`) re-creates its inner optimiser (SGD with an Armijo line search) at every outer step and
scales the surrogate differently (the prox term as a mean, its `eta` ~ 1/(2 eta) here); `reset_inner=True` keeps the
first, and any optax line search or schedule can be the inner transform.

Note on scale: ||.||^2 is the squared norm of the whole target array. For L = (1/b) sum_i l_i(z_i) over a batch of b
examples with each l_i beta-smooth, L is (beta/b)-smooth, so the majorisation holds for eta <= b/beta.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxlib_methods import validation

SSO_STATIC_ARGS = ("num_inner_steps", "inner", "reset_inner")


class SSOState(NamedTuple):
  """State of `sso`: the outer step count and the inner transform's state (re-initialised each step by default).

  Lavington et al., "Target-based Surrogates for Stochastic Optimization", ICML 2023, arXiv:2302.02607.

  count: int32 scalar; inner_state: the inner transform's state (a tree like the params where the inner transform keeps
  one).
  """
  count: jax.Array
  inner_state: optax.OptState


class TargetSurrogateOptimizer(NamedTuple):
  """What `sso` returns: `init(params) -> SSOState` and
  `step(params, state, model_fn, target_loss_fn) -> (params, state, info)` (see `sso`).

  Lavington et al., "Target-based Surrogates for Stochastic Optimization", ICML 2023, arXiv:2302.02607 (the SSO
  algorithm).

  params: any tree; model_fn(params) returns the targets z (e.g. [B, K] logits); target_loss_fn(z) returns a scalar.
  """
  init: Callable[[Any], SSOState]
  step: Callable[..., tuple]


def _sq_norm(tree: Any) -> jax.Array:
  return sum(jnp.sum(jnp.square(x.astype(jnp.promote_types(x.dtype, jnp.float32)))) for x in jax.tree.leaves(tree))


def _vdot(a: Any, b: Any) -> jax.Array:
  return sum(jnp.sum(x.astype(jnp.promote_types(x.dtype, jnp.float32)) * y.astype(jnp.promote_types(y.dtype,
                                                                                                   jnp.float32)))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def sso_surrogate(outputs: Any, targets: Any, target_grads: Any, eta: float) -> jax.Array:
  """g_t without its constant: <grad_z L(z_t), f(theta) - z_t> + ||f(theta) - z_t||^2 / (2 eta).

  Lavington et al., "Target-based Surrogates for Stochastic Optimization", ICML 2023, arXiv:2302.02607 (the
  target surrogate of Sec. 3). Add L(z_t) for the full surrogate (an upper bound on L(f(theta)) when L is
  (1/eta)-smooth in z).

  Args:
    outputs: f(theta), an array or pytree of arrays (e.g. logits [B, K]).
    targets: z_t = f(theta_t), the same structure and shapes (treated as constants).
    target_grads: grad_z L(z_t), the same structure and shapes (constants).
    eta: the target-space step size eta > 0.

  Returns:
    A float32 (or wider) scalar.
  """
  if jax.tree.structure(outputs) != jax.tree.structure(targets) or jax.tree.structure(outputs) != \
      jax.tree.structure(target_grads):
    raise ValueError("outputs, targets and target_grads must share one tree structure")
  for o, z, g in zip(jax.tree.leaves(outputs), jax.tree.leaves(targets), jax.tree.leaves(target_grads)):
    if o.shape != z.shape or o.shape != g.shape:
      raise ValueError(f"outputs, targets and target_grads must share shapes, got {o.shape}, {z.shape}, {g.shape}")
  validation.check_positive(eta, "eta")
  z = jax.lax.stop_gradient(targets)
  gz = jax.lax.stop_gradient(target_grads)
  diff = jax.tree.map(lambda o, t: o - t, outputs, z)
  return _vdot(gz, diff) + _sq_norm(diff) / (2.0 * eta)


def sso(
    inner: optax.GradientTransformation,
    *,
    eta: float,
    num_inner_steps: int,
    reset_inner: bool = True,
) -> TargetSurrogateOptimizer:
  """SSO: one expensive target-space gradient, then `num_inner_steps` steps of `inner` on the surrogate.

  Lavington, Vaswani, Babanezhad, Schmidt, Le Roux, "Target-based Surrogates for Stochastic Optimization", ICML 2023,
  arXiv:2302.02607 (Alg. 1, SSO). One outer step from theta_t:

      z_t = f(theta_t);  (L_t, G_t) = (L(z_t), grad_z L(z_t))                 (the one expensive gradient)
      g_t(theta) = L_t + <G_t, f(theta) - z_t> + ||f(theta) - z_t||^2 / (2 eta)
      theta^(0) = theta_t;  theta^(k+1) = theta^(k) + inner.update(grad g_t(theta^(k)))   k < m
      theta_{t+1} = theta^(m)

  With a linear model f(theta) = X theta, m = 1 and `inner = optax.sgd(a)` this is one SGD step of size a on
  L(X theta) (the prox term's gradient vanishes at theta_t); as m grows with plain gradient descent inside, it
  converges to the projection argmin_theta ||X theta - (z_t - eta G_t)||^2 (projected SGD in target space).

  Args:
    inner: any optax transform minimising the surrogate (it sees the surrogate's gradient; it may need params).
    eta: target-space step size eta > 0 (<= 1/beta for a beta-smooth L: then g_t majorises the loss).
    num_inner_steps: m >= 1 inner steps per expensive gradient.
    reset_inner: re-initialise the inner state at each outer step (as the official code does) or carry it.

  Returns:
    `TargetSurrogateOptimizer(init, step)`. `step(params, state, model_fn, target_loss_fn)` takes
    `model_fn(params) -> z` (targets of the current minibatch; cheap) and `target_loss_fn(z) -> scalar` (the
    expensive loss, differentiated once) and returns `(new_params, new_state, info)` with info = {"loss": L(z_t),
    "surrogate_start": g_t(theta_t) (= L(z_t)), "surrogate_end": g_t(theta_{t+1})}. Jit it by closing over the
    batch: `jax.jit(lambda p, s, x, y: opt.step(p, s, lambda q: f(q, x), lambda z: loss(z, y)))`.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> x, y = jnp.array([[1.0, 0.0], [0.0, 2.0]]), jnp.array([1.0, -1.0])
    >>> opt = sso(optax.sgd(0.1), eta=1.0, num_inner_steps=5)
    >>> theta = jnp.zeros(2)
    >>> theta, state, info = opt.step(theta, opt.init(theta), lambda t: x @ t, lambda z: 0.5 * jnp.sum((z - y) ** 2))
    >>> float(info["surrogate_end"]) < float(info["loss"])
    True
  """
  if not isinstance(inner, optax.GradientTransformation):
    raise TypeError(f"inner must be an optax.GradientTransformation, got {type(inner).__name__}")
  validation.check_positive(eta, "eta")
  if isinstance(num_inner_steps, bool) or not isinstance(num_inner_steps, int) or num_inner_steps < 1:
    raise ValueError(f"num_inner_steps must be an int >= 1, got {num_inner_steps=!r}")
  if not isinstance(reset_inner, bool):
    raise TypeError(f"reset_inner must be a bool, got {reset_inner=!r}")

  def init_fn(params):
    validation.check_float_tree(params, "params")
    return SSOState(count=jnp.zeros([], jnp.int32), inner_state=inner.init(params))

  def step_fn(params, state, model_fn, target_loss_fn):
    if not callable(model_fn) or not callable(target_loss_fn):
      raise TypeError("step needs model_fn(params) -> targets and target_loss_fn(targets) -> scalar callables")
    z_t = model_fn(params)
    loss_t, g_z = jax.value_and_grad(target_loss_fn)(z_t)
    z_t = jax.lax.stop_gradient(z_t)

    def surrogate(p):
      return loss_t + sso_surrogate(model_fn(p), z_t, g_z, eta)

    inner_state = inner.init(params) if reset_inner else state.inner_state

    def body(_, carry):
      p, s = carry
      grads = jax.grad(surrogate)(p)
      updates, s = inner.update(grads, s, p)
      return optax.apply_updates(p, updates), s

    new_params, inner_state = jax.lax.fori_loop(0, num_inner_steps, body, (params, inner_state))
    info = {"loss": loss_t, "surrogate_start": surrogate(params), "surrogate_end": surrogate(new_params)}
    return new_params, SSOState(count=optax.safe_increment(state.count), inner_state=inner_state), info

  return TargetSurrogateOptimizer(init_fn, step_fn)


sso.STATIC_ARGS = SSO_STATIC_ARGS

__all__ = ["SSOState", "SSO_STATIC_ARGS", "TargetSurrogateOptimizer", "sso", "sso_surrogate"]
