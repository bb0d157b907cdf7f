"""Learning from aggregate responses: bag-level vs instance-level losses and their interpolation.

Paper [194]: Adel Javanmard, Lin Chen, Vahab Mirrokni, Ashwinkumar Badanidiyuru, Gang Fu, "Learning from Aggregate
Responses: Instance Level versus Bag Level Loss Functions", ICLR 2024, arXiv:2401.11081.

The training set is partitioned into bags; only each bag's aggregate (mean) response ybar_b is observed. Two losses:

    bag level       L_bag(b)  = l( ybar_b, (1/k_b) sum_{i in b} f(x_i) )
    instance level  L_inst(i) = l( ybar_{b(i)}, f(x_i) )          (every instance gets its bag's response)

For the squared loss the two are linked exactly, per bag,

    (1/k_b) sum_{i in b} (ybar_b - f_i)^2 = (ybar_b - fbar_b)^2 + (1/k_b) sum_{i in b} (f_i - fbar_b)^2,

i.e. the instance-level loss is the bag-level loss plus the within-bag variance of the predictions, a regulariser:
the paper shows the bag-level loss gives an unbiased but higher-variance estimator, the instance-level loss a
biased, lower-variance one, and studies the interpolating estimator

    L_rho(b) = rho * L_bag(b) + (1 - rho) * (1/k_b) sum_{i in b} L_inst(i),    rho in [0, 1],

which for the squared loss is L_bag(b) + (1 - rho) * within-bag variance. Convention here: rho = 1 is the bag-level
loss and rho = 0 the instance-level loss (check the paper's own parametrisation before comparing rho values).

Bags are given by integer ids (segment ops), so bags may have different sizes; `num_bags` must be static.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def squared_loss(target: jax.Array, pred: jax.Array) -> jax.Array:
  """l(y, f) = (y - f)^2, elementwise (the loss of Javanmard et al. 2024, arXiv:2401.11081). Floating, broadcast."""
  return (validation.check_floating(target, "target") - validation.check_floating(pred, "pred")) ** 2


def _check(preds, bag_ids, bag_responses, num_bags):
  """Checks; returns (preds, bag_ids clipped into range, bag_responses, valid [N] or None)."""
  if isinstance(num_bags, bool) or not isinstance(num_bags, (int, np.integer)) or num_bags <= 0:
    raise ValueError(f"num_bags must be a positive int (static), got {num_bags=}")
  preds = validation.check_floating(preds, "preds")
  bag_ids = validation.check_integer(bag_ids, "bag_ids")
  if preds.ndim != 1 or bag_ids.shape != preds.shape:
    raise ValueError(f"preds and bag_ids must both have shape [N], got preds.shape={preds.shape}, "
                     f"bag_ids.shape={bag_ids.shape}")
  if bag_responses is not None:
    bag_responses = validation.check_floating(bag_responses, "bag_responses")
    if bag_responses.shape != (num_bags,):
      raise ValueError(f"bag_responses must have shape [num_bags]={(num_bags,)}, got "
                       f"bag_responses.shape={bag_responses.shape}")
  valid = validation.check_values((bag_ids >= 0) & (bag_ids < num_bags), bag_ids, "bag_ids",
                                  f"integer bag indices in [0, {num_bags})")
  return preds, jnp.clip(bag_ids, 0, num_bags - 1), bag_responses, valid


def _bag_sizes(bag_ids, num_bags, dtype):
  return jax.ops.segment_sum(jnp.ones(jnp.shape(bag_ids), dtype), bag_ids, num_segments=num_bags)


def _segment_mean(x, bag_ids, num_bags):
  k = _bag_sizes(bag_ids, num_bags, x.dtype)
  s = jax.ops.segment_sum(x, bag_ids, num_segments=num_bags)
  return s / jnp.maximum(k, 1), k


def bag_level_loss(preds: jax.Array, bag_ids: jax.Array, bag_responses: jax.Array, *, num_bags: int,
                   loss_fn: LossFn = squared_loss) -> jax.Array:
  """Bag-level loss per bag: l(ybar_b, mean_{i in b} f_i) (Javanmard et al. 2024, arXiv:2401.11081).

  Args:
    preds: [N] model outputs f(x_i). bag_ids: [N] integer bag of each instance, in [0, num_bags).
    bag_responses: [num_bags] aggregate responses ybar_b. num_bags: static int.
    loss_fn: elementwise l(target, pred) (default squared loss).

  Returns:
    [num_bags]; empty bags give 0. Under jit, an out-of-range bag id makes every entry NaN (which bag it meant is
    unknown).
  """
  p, ids, yb, valid = _check(preds, bag_ids, bag_responses, num_bags)
  fbar, k = _segment_mean(p, ids, num_bags)
  out = jnp.where(k > 0, loss_fn(yb.astype(p.dtype), fbar), 0.0)
  return validation.nan_where_invalid(out, None if valid is None else jnp.all(valid))


def instance_level_loss(preds: jax.Array, bag_ids: jax.Array, bag_responses: jax.Array, *, num_bags: int,
                        loss_fn: LossFn = squared_loss) -> jax.Array:
  """Instance-level loss per instance: l(ybar_{b(i)}, f_i) (Javanmard et al. 2024). Shapes as `bag_level_loss`.

  Returns:
    [N] (NaN rows for out-of-range bag ids under jit).
  """
  p, ids, yb, valid = _check(preds, bag_ids, bag_responses, num_bags)
  return validation.nan_where_invalid(loss_fn(yb.astype(p.dtype)[ids], p), valid)


def interpolating_loss(preds: jax.Array, bag_ids: jax.Array, bag_responses: jax.Array, *, num_bags: int,
                       rho: Any, loss_fn: LossFn = squared_loss) -> jax.Array:
  """Interpolating loss per bag: rho L_bag(b) + (1 - rho) mean_{i in b} L_inst(i) (Javanmard et al. 2024).

  rho = 1: bag level; rho = 0: instance level (our convention, see the module docstring). rho: a scalar in [0, 1]
  (outside: ValueError eagerly, NaN under jit).

  Returns:
    [num_bags]; empty bags give 0. Average over bags (weighted by bag size if the bags differ) for the objective.
  """
  ok = validation.scalar_in_interval(rho, "rho", 0.0, 1.0)   # traced and outside: NaN, not an extrapolation
  _, ids, _, valid = _check(preds, bag_ids, bag_responses, num_bags)
  valid = validation.combine_valid(valid, None if ok is None else jnp.broadcast_to(ok, ids.shape))
  bag = bag_level_loss(preds, bag_ids, bag_responses, num_bags=num_bags, loss_fn=loss_fn)
  inst = instance_level_loss(preds, bag_ids, bag_responses, num_bags=num_bags, loss_fn=loss_fn)
  inst_bag, _ = _segment_mean(inst, ids, num_bags)
  return validation.nan_where_invalid(rho * bag + (1.0 - rho) * inst_bag, None if valid is None else jnp.all(valid))


def within_bag_variance(preds: jax.Array, bag_ids: jax.Array, *, num_bags: int) -> jax.Array:
  """(1/k_b) sum_{i in b} (f_i - fbar_b)^2 per bag: the regulariser the instance-level squared loss adds (Javanmard
  et al. 2024, arXiv:2401.11081). preds, bag_ids: [N] -> [num_bags] (0 for empty bags)."""
  p, ids, _, valid = _check(preds, bag_ids, None, num_bags)
  fbar, _ = _segment_mean(p, ids, num_bags)
  var, _ = _segment_mean((p - fbar[ids]) ** 2, ids, num_bags)
  return validation.nan_where_invalid(var, None if valid is None else jnp.all(valid))


__all__ = ["bag_level_loss", "instance_level_loss", "interpolating_loss", "squared_loss", "within_bag_variance"]
