"""Shared solver loops of the analysis module (private: one implementation, used by several diagnostics)."""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import optax


def minimize_lbfgs(fun: Callable[[Any], jax.Array], x0: Any, steps: int,
                   opt: Optional[optax.GradientTransformationExtraArgs] = None) -> Any:
  """`steps` iterations of L-BFGS (`optax.lbfgs()` unless `opt` is given) on the scalar `fun` from the pytree `x0`.

  The loop of optax's L-BFGS documentation inside one `jax.lax.scan`: each step reuses the value and gradient the
  line search stored in the state (`optax.value_and_grad_from_state`), so `fun` is evaluated only by the line
  search. Fixed length, no stopping test: jit- and vmap-safe; `steps` must be a static Python int >= 1 (callers
  check it). Returns the final parameters, shaped like `x0`.
  """
  opt = optax.lbfgs() if opt is None else opt
  value_and_grad = optax.value_and_grad_from_state(fun)

  def step(carry, _):
    x, state = carry
    value, grad = value_and_grad(x, state=state)
    updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=fun)
    return (optax.apply_updates(x, updates), state), None

  (x, _), _ = jax.lax.scan(step, (x0, opt.init(x0)), None, length=steps)
  return x
