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

from jaxlib_methods.validation import check_in_interval

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def squared_loss(target: jax.Array, pred: jax.Array) -> jax.Array:
  """l(y, f) = (y - f)^2, elementwise."""
  return (target - pred) ** 2


def _check(preds, bag_ids, bag_responses, num_bags) -> None:
  if not isinstance(num_bags, (int, np.integer)) or num_bags <= 0:
    raise ValueError(f"num_bags must be a positive int (static), got {num_bags=}")
  if jnp.ndim(preds) != 1 or jnp.shape(bag_ids) != jnp.shape(preds):
    raise ValueError(f"preds and bag_ids must both have shape [N], got {jnp.shape(preds)=}, {jnp.shape(bag_ids)=}")
  if jnp.shape(bag_responses) != (num_bags,):
    raise ValueError(f"bag_responses must have shape [num_bags]={(num_bags,)}, got {jnp.shape(bag_responses)=}")
  if not jnp.issubdtype(jnp.asarray(bag_ids).dtype, jnp.integer):
    raise ValueError(f"bag_ids must be integers, got {jnp.asarray(bag_ids).dtype=}")
  if not isinstance(bag_ids, jax.core.Tracer) and np.size(bag_ids) > 0:
    b = np.asarray(bag_ids)
    if b.min() < 0 or b.max() >= num_bags:
      raise ValueError(f"bag_ids must lie in [0, {num_bags}), got min={b.min()}, max={b.max()}")


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
    [num_bags]; empty bags give 0.
  """
  _check(preds, bag_ids, bag_responses, num_bags)
  p = jnp.asarray(preds)
  fbar, k = _segment_mean(p, bag_ids, num_bags)
  return jnp.where(k > 0, loss_fn(jnp.asarray(bag_responses, p.dtype), fbar), 0.0)


def instance_level_loss(preds: jax.Array, bag_ids: jax.Array, bag_responses: jax.Array, *, num_bags: int,
                        loss_fn: LossFn = squared_loss) -> jax.Array:
  """Instance-level loss per instance: l(ybar_{b(i)}, f_i) (Javanmard et al. 2024). Shapes as `bag_level_loss`.

  Returns:
    [N].
  """
  _check(preds, bag_ids, bag_responses, num_bags)
  p = jnp.asarray(preds)
  return loss_fn(jnp.asarray(bag_responses, p.dtype)[jnp.asarray(bag_ids)], p)


def interpolating_loss(preds: jax.Array, bag_ids: jax.Array, bag_responses: jax.Array, *, num_bags: int,
                       rho: Any, loss_fn: LossFn = squared_loss) -> jax.Array:
  """Interpolating loss per bag: rho L_bag(b) + (1 - rho) mean_{i in b} L_inst(i) (Javanmard et al. 2024).

  rho = 1: bag level; rho = 0: instance level (our convention, see the module docstring). rho in [0, 1].

  Returns:
    [num_bags]; empty bags give 0. Average over bags (weighted by bag size if the bags differ) for the objective.
  """
  check_in_interval(rho, "rho", 0.0, 1.0)
  bag = bag_level_loss(preds, bag_ids, bag_responses, num_bags=num_bags, loss_fn=loss_fn)
  inst = instance_level_loss(preds, bag_ids, bag_responses, num_bags=num_bags, loss_fn=loss_fn)
  inst_bag, _ = _segment_mean(inst, bag_ids, num_bags)
  return rho * bag + (1.0 - rho) * inst_bag


def within_bag_variance(preds: jax.Array, bag_ids: jax.Array, *, num_bags: int) -> jax.Array:
  """(1/k_b) sum_{i in b} (f_i - fbar_b)^2 per bag: the regulariser the instance-level squared loss adds. [num_bags]."""
  p = jnp.asarray(preds)
  fbar, _ = _segment_mean(p, bag_ids, num_bags)
  var, _ = _segment_mean((p - fbar[bag_ids]) ** 2, bag_ids, num_bags)
  return var


__all__ = ["bag_level_loss", "instance_level_loss", "interpolating_loss", "squared_loss", "within_bag_variance"]
