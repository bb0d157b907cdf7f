"""CO2: local inner steps with no communication, and an outer momentum step on one-step-stale averaged parameters.

Paper [52]: Weigao Sun, Zhen Qin, Weixuan Sun, Shidi Li, Dong Li, Xuyang Shen, Yu Qiao, Yiran Zhong, "CO2: Efficient
Distributed Training with Full Communication-Computation Overlap", ICLR 2024, arXiv:2401.16265 (Sec. 3, Algorithm 1,
Fig. 1). Official code: `weigao266/fairscale-CO2`, `CO2DistributedDataParallel` (`_perform_local_optimization`).

G data-parallel replicas (the mesh's `data` axis) train round t as follows (`co2_round`, run inside `shard_map`):

    inner:   x^(i)_{t,0} = x_{t,0};  tau steps of any optax optimizer on replica i's own batches
             -> x^(i)_{t,tau}                                                          (no communication)
    AAR:     xbar_{t-1} = (1/G) sum_i x^(i)_{t-1,tau}     (one all-reduce per dtype group, launched at the end of round
             t-1; it has no data dependence on round t's inner steps, so XLA may overlap the two)
    outer:   m_t = beta m_{t-1} + (x_{t-1,0} - xbar_{t-1}) / lambda            (staleness gap penalty lambda >= 1)
             m_t = clip(m_t, -phi, phi)                                         (outer momentum clipping, elementwise)
             x_{t+1,0} = x_{t,0} - alpha m_t                                    (outer learning rate alpha)

so the outer step of round t uses the average of round t-1: one step stale, as in CO2's asynchronous all-reduce.
With lambda = 1, phi = inf this is SlowMo's outer momentum (Wang et al. 2020, arXiv:1910.00643) applied one round
late; with alpha = 1, beta = 0 and no staleness it would be local SGD.

Sources and differences. The abstract and the reviews (ICLR 2024 OpenReview) describe the staleness gap penalty and
the outer momentum clipping with a threshold phi; the paper's equation for the penalty could not be retrieved here, so
its form follows the authors' released code, which divides the pseudo-gradient by a constant `co2_gap_penalty`
(lambda) and clamps the outer momentum elementwise to [-phi, phi] (`co2_clip_threshold`). In that code `_co2_clip`
calls `torch.clamp` out of place, so its clipping has no effect; the clamp here is applied. The official code also
averages parameters in place while local training continues (a racy overlap); here the average is of the
end-of-round parameters exactly.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxlib_methods import validation


class CO2State(NamedTuple):
  """Outer state of CO2 (every leaf mirrors the params).

  count: int32 rounds done.
  anchor: x_{t,0}, where every replica starts round t (replicated).
  momentum: m_{t-1}, the outer momentum (replicated).
  stale_anchor: x_{t-1,0}, the anchor of the round whose average is in flight (replicated).
  pending: x^(i)_{t-1,tau}, this replica's end-of-round parameters, averaged at the next round (per replica).

  Sun et al., "CO2: Efficient Distributed Training with Full Communication-Computation Overlap", ICLR 2024,
  arXiv:2401.16265 (Sec. 3, Algorithm 1).

  count: int32 scalar; every other field is a tree like the params (each leaf the shape of its parameter; momentum in
  `momentum_dtype`).
  """
  count: jax.Array
  anchor: Any
  momentum: Any
  stale_anchor: Any
  pending: Any


def co2_init(params: Any, *, momentum_dtype: Any = jnp.float32) -> CO2State:
  """The state before round 0: anchor = stale anchor = pending = params, momentum 0 (so round 0 moves nothing
  and round 1 applies round 0's average). params: any pytree of arrays.

  Sun et al., "CO2: Efficient Distributed Training with Full Communication-Computation Overlap", ICLR 2024,
  arXiv:2401.16265 (Algorithm 1). Returns a `CO2State` whose trees have the params' shapes and an int32 scalar count.
  """
  zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, momentum_dtype), params)
  return CO2State(count=jnp.zeros([], jnp.int32), anchor=params, momentum=zeros, stale_anchor=params,
                  pending=params)


def _check(outer_lr, outer_momentum, gap_penalty, clip_threshold):
  validation.check_nonnegative(outer_lr, "outer_lr")
  validation.check_in_interval(outer_momentum, "outer_momentum", 0.0, 1.0, closed_high=False)
  if validation.is_concrete_number(gap_penalty) and not float(gap_penalty) >= 1.0:
    raise ValueError(f"gap_penalty (lambda) must be >= 1, got {gap_penalty=}")
  if validation.is_concrete_number(clip_threshold) and not float(clip_threshold) > 0:
    raise ValueError(f"clip_threshold (phi) must be > 0 (inf: no clipping), got {clip_threshold=}")


def co2_outer_update(anchor: Any, momentum: Any, stale_anchor: Any, stale_average: Any, *, outer_lr: float = 1.0,
                     outer_momentum: float = 0.5, gap_penalty: float = 1.0,
                     clip_threshold: float = math.inf) -> tuple[Any, Any]:
  """CO2's outer step (no communication): m = clip(beta m + (x_{t-1,0} - xbar_{t-1}) / lambda, phi);
  x_{t+1,0} = x_{t,0} - alpha m.

  Sun et al., "CO2", ICLR 2024, arXiv:2401.16265, Algorithm 1 (penalty and clipping as in the official code; see
  the module docstring).

  Args:
    anchor: x_{t,0} (pytree). momentum: m_{t-1} (same structure). stale_anchor: x_{t-1,0}.
    stale_average: xbar_{t-1}, the replicas' average of round t-1's end parameters.
    outer_lr: alpha >= 0. outer_momentum: beta in [0, 1). gap_penalty: lambda >= 1. clip_threshold: phi > 0
      (math.inf: no clipping).

  Returns:
    (x_{t+1,0}, m_t), each with the input's structure and dtypes.
  """
  _check(outer_lr, outer_momentum, gap_penalty, clip_threshold)

  def mom(m, x_old, xbar):
    g = (x_old.astype(m.dtype) - xbar.astype(m.dtype)) / gap_penalty
    m = outer_momentum * m + g
    if not (validation.is_concrete_number(clip_threshold) and math.isinf(float(clip_threshold))):
      m = jnp.clip(m, -clip_threshold, clip_threshold)
    return m

  new_m = jax.tree.map(mom, momentum, stale_anchor, stale_average)
  new_anchor = jax.tree.map(lambda x, m: (x.astype(m.dtype) - outer_lr * m).astype(x.dtype), anchor, new_m)
  return new_anchor, new_m


def pmean_grouped(tree: Any, axis_name: str) -> Any:
  """Mean over `axis_name` of every leaf, as ONE all-reduce per dtype: the leaves of a dtype are flattened into one
  buffer (the official code's `parameters_to_vector` bucket), averaged, and split back. Inside shard_map/pmap.

  The asynchronous all-reduce of Sun et al., "CO2: Efficient Distributed Training with Full Communication-Computation
  Overlap", ICLR 2024, arXiv:2401.16265 (Sec. 3). tree: any pytree; returns a tree of the same shapes and dtypes.
  """
  leaves, treedef = jax.tree.flatten(tree)
  groups: dict = {}
  for i, x in enumerate(leaves):
    groups.setdefault(jnp.dtype(x.dtype), []).append(i)
  out = [None] * len(leaves)
  for dtype, idx in groups.items():
    flat = jnp.concatenate([jnp.ravel(leaves[i]) for i in idx])
    flat = jax.lax.pmean(flat, axis_name)
    offset = 0
    for i in idx:
      n = leaves[i].size
      out[i] = flat[offset:offset + n].reshape(leaves[i].shape)
      offset += n
  return treedef.unflatten(out)


def as_varying(tree: Any, axis_name: str) -> Any:
  """Mark replicated values as varying over `axis_name` (inside shard_map), so local training may diverge them.

  For the local inner steps of Sun et al., "CO2: Efficient Distributed Training with Full Communication-Computation
  Overlap", ICLR 2024, arXiv:2401.16265 (Sec. 3). tree: any pytree; returns a tree of the same shapes and dtypes.
  """
  return jax.tree.map(lambda x: jax.lax.pcast(x, (axis_name,), to="varying"), tree)


def co2_round(state: CO2State, inner_state: Any, batches: Any, *,
              inner_steps: Callable[[Any, Any, Any], tuple[Any, Any, Any]], axis_name: str, outer_lr: float = 1.0,
              outer_momentum: float = 0.5, gap_penalty: float = 1.0, clip_threshold: float = math.inf
              ) -> tuple[CO2State, Any, Any]:
  """One CO2 round on this replica (call inside `jax.shard_map` over `axis_name`).

  The all-reduce of the previous round's end parameters (`pmean_grouped(state.pending)`) and this round's
  `inner_steps` do not depend on each other; the outer update consumes the (stale) average.

  Sun et al., "CO2: Efficient Distributed Training with Full Communication-Computation Overlap", ICLR 2024,
  arXiv:2401.16265 (Sec. 3, Algorithm 1). Every tree keeps the params' shapes.

  Args:
    state: CO2State (pending: this replica's leaves).
    inner_state: the inner optimizer's state of this replica (kept across rounds, never averaged).
    batches: this replica's data for the round (whatever `inner_steps` takes).
    inner_steps: (params, inner_state, batches) -> (params, inner_state, aux): tau local steps, no collectives.
    axis_name: the data-parallel mesh axis.
    outer_lr, outer_momentum, gap_penalty, clip_threshold: see `co2_outer_update`.

  Returns:
    (new CO2State, new inner_state, aux from inner_steps).
  """
  stale_average = pmean_grouped(state.pending, axis_name)
  local, inner_state, aux = inner_steps(as_varying(state.anchor, axis_name), inner_state, batches)
  anchor, momentum = co2_outer_update(state.anchor, state.momentum, state.stale_anchor, stale_average,
                                      outer_lr=outer_lr, outer_momentum=outer_momentum, gap_penalty=gap_penalty,
                                      clip_threshold=clip_threshold)
  new = CO2State(count=optax.safe_increment(state.count), anchor=anchor, momentum=momentum,
                 stale_anchor=state.anchor, pending=local)
  return new, inner_state, aux


def co2_finalize(state: CO2State, *, axis_name: str, outer_lr: float = 1.0, outer_momentum: float = 0.5,
                 gap_penalty: float = 1.0, clip_threshold: float = math.inf) -> Any:
  """The final parameters: one last outer step with the average of the last round (all local work applied once).
  Call inside shard_map over `axis_name`; returns the params (replicated).

  Sun et al., "CO2: Efficient Distributed Training with Full Communication-Computation Overlap", ICLR 2024,
  arXiv:2401.16265 (Algorithm 1). Returns a tree like the params (same shapes and dtypes).
  """
  average = pmean_grouped(state.pending, axis_name)
  anchor, _ = co2_outer_update(state.anchor, state.momentum, state.stale_anchor, average, outer_lr=outer_lr,
                               outer_momentum=outer_momentum, gap_penalty=gap_penalty,
                               clip_threshold=clip_threshold)
  return anchor


COLLECTIVE_OPS = ("all-reduce", "all-gather", "reduce-scatter", "collective-permute", "all-to-all",
                  "collective-broadcast")


def count_collectives(hlo_text: str) -> dict[str, int]:
  """Count the cross-replica collectives in compiled HLO text (`jax.jit(f).lower(...).compile().as_text()`):
  {op: number of instructions}; async pairs (`all-reduce-start`/`-done`) count once.

  Used to check that a round of Sun et al., "CO2: Efficient Distributed Training with Full Communication-Computation
  Overlap", ICLR 2024, arXiv:2401.16265 (Sec. 3), issues one all-reduce per dtype group. hlo_text: a str; returns a
  dict of Python ints.
  """
  import re
  counts = {}
  for op in COLLECTIVE_OPS:
    pattern = rf"= [^=\n]*? {re.escape(op)}(?:-start)?\("
    counts[op] = len(re.findall(pattern, hlo_text))
  return counts


__all__ = ["CO2State", "COLLECTIVE_OPS", "as_varying", "co2_finalize", "co2_init", "co2_outer_update", "co2_round",
           "count_collectives", "pmean_grouped"]
