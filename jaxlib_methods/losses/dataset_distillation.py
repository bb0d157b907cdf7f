"""Dataset distillation by matching training trajectories (MTT) and TESLA's constant-memory gradient.

Paper [60]: Justin Cui, Ruochen Wang, Si Si, Cho-Jui Hsieh, "Scaling Up Dataset Distillation to ImageNet-1K with
Constant Memory" (TESLA), ICML 2023, arXiv:2211.10586. Official code: https://github.com/justincui03/tesla
(distill.py). The trajectory-matching loss is that of MTT: George Cazenavette et al., "Dataset Distillation by
Matching Training Trajectories", CVPR 2022, arXiv:2203.11932, Eq. (1).

The shared machinery of the dataset-distillation losses lives here, written once: `unrolled_sgd` (the inner SGD on
the synthetic set, N steps of minibatches given as indices), `mtt_loss` and the two outer gradients.

MTT: starting from an expert checkpoint theta*_t, train a student for N SGD steps with learning rate beta on
minibatches X_i of the synthetic set,

    theta_{t+i+1} = theta_{t+i} - beta g_i,    g_i = grad_theta l(theta_{t+i}; X_i),

and compare with the expert M epochs later (MTT Eq. 1, TESLA Eq. 2):

    L = ||theta_{t+N} - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2.

Back-propagating through the unrolled trajectory (BPTT, `mtt_bptt_grad`) keeps every step's activations: memory
grows linearly in N. TESLA writes theta_{t+N} = theta*_t - beta G with G = sum_i g_i (TESLA Eq. 4) and differentiates
each g_i with respect to its own batch X_i (TESLA Eqs. 5-6; distill.py lines "single_term + square_term"):

    dL/dX_i = 2 / ||theta*_t - theta*_{t+M}||^2
              * d/dX_i < beta (theta*_{t+M} - theta*_t) + beta^2 G, g_i(theta_{t+i}, X_i) >,

which needs only G (one forward pass) and, per step, one Hessian-vector-like product at fixed theta_{t+i}: memory
is constant in N (`tesla_grad` recomputes the trajectory in a second pass instead of storing it).

What "exact" means (checked in tests/losses/test_dataset_distillation.py): Eq. 6 treats theta_{t+i} as a constant
with respect to the earlier batches X_j, j < i (the official code does the same: the student parameters are
updated with a detached gradient). `tesla_grad` therefore equals, to rounding, the autodiff gradient of L through
`unrolled_sgd(..., first_order=True)` (the inner gradients see the parameters through a stop-gradient), and it
equals full BPTT exactly when N = 1. For N > 1 full BPTT has the additional second-order terms
-beta sum_{j > i} H_j dtheta_j/dX_i, which Eq. 6 drops; the experiment tesla_mtt measures that gap (an open
question raised with the authors in justincui03/tesla issue #4).

Soft label assignment (TESLA Sec. 4.2): the synthetic images get the expert's soft labels
softmax(f(theta*_{t+M}; X)) (`tesla_soft_labels`), train-free, and the inner loss is the soft-label cross-entropy.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation

InnerLoss = Callable[[Any, jax.Array, jax.Array], jax.Array]


class MTTGrads(NamedTuple):
  """The MTT loss and its gradients: `loss` scalar, `syn_x` like the synthetic inputs, `lr` scalar."""
  loss: jax.Array
  syn_x: jax.Array
  lr: jax.Array


def _tree_sqnorm(t) -> jax.Array:
  return sum(jnp.sum(jnp.square(x)) for x in jax.tree_util.tree_leaves(t))


def _tree_vdot(a, b) -> jax.Array:
  return sum(jnp.vdot(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def _check_params(*named) -> None:
  """named: (name, tree) pairs; every tree must match the first's structure and leaf shapes, floating leaves."""
  names = [n for n, _ in named]
  trees = [t for _, t in named]
  ref = jax.tree_util.tree_structure(trees[0])
  shapes = [np.shape(x) for x in jax.tree_util.tree_leaves(trees[0])]
  for name, t in zip(names[1:], trees[1:]):
    if jax.tree_util.tree_structure(t) != ref or [np.shape(x) for x in jax.tree_util.tree_leaves(t)] != shapes:
      raise ValueError(f"{name} must have the tree structure and leaf shapes of {names[0]}")
  for name, t in zip(names, trees):
    leaves = jax.tree_util.tree_leaves(t)
    if not leaves:
      raise ValueError(f"{name} has no leaves (an empty parameter tree)")
    for leaf in leaves:
      validation.check_floating(leaf, name)


def mtt_loss(student_params: Any, start_params: Any, target_params: Any) -> jax.Array:
  """MTT trajectory-matching loss ||theta_{t+N} - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2.

  Cazenavette et al., "Dataset Distillation by Matching Training Trajectories", 2022, arXiv:2203.11932, Eq. (1);
  TESLA (Cui et al., "Scaling Up Dataset Distillation to ImageNet-1K with Constant Memory", 2023,
  arXiv:2211.10586), Eq. (2). A batch-level scalar (one value for the whole parameter vector).

  Args:
    student_params: the student after N synthetic steps, theta_{t+N} (any pytree of floating arrays).
    start_params: the expert checkpoint theta*_t the student started from (same tree and shapes).
    target_params: the expert checkpoint theta*_{t+M} (same tree and shapes).

  Returns:
    A float32 (or wider) scalar; NaN if start_params == target_params (the normaliser is zero) or if the
    normaliser is not finite.
  """
  _check_params(("student_params", student_params), ("start_params", start_params),
                ("target_params", target_params))
  ct = jnp.promote_types(validation.compute_dtype_for(jax.tree_util.tree_leaves(student_params)[0].dtype),
                         jnp.float32)
  f = lambda t: jax.tree_util.tree_map(lambda x: jnp.asarray(x, ct), t)
  s, a, b = f(student_params), f(start_params), f(target_params)
  num = _tree_sqnorm(jax.tree_util.tree_map(jnp.subtract, s, b))
  den = _tree_sqnorm(jax.tree_util.tree_map(jnp.subtract, a, b))
  return num / jnp.where((den > 0) & jnp.isfinite(den), den, jnp.nan)


def _check_unroll(syn_x, syn_y, lr, batch_indices):
  syn_x = validation.check_floating(syn_x, "syn_x")
  if syn_x.ndim < 1 or syn_x.shape[0] < 1:
    raise ValueError(f"syn_x must be [n_syn, ...] with n_syn >= 1, got syn_x.shape={syn_x.shape}")
  syn_y = jnp.asarray(syn_y)
  if syn_y.ndim < 1 or syn_y.shape[0] != syn_x.shape[0]:
    raise ValueError(f"syn_y must have syn_x's leading size {syn_x.shape[0]}, got syn_y.shape={syn_y.shape}")
  idx = validation.check_integer(batch_indices, "batch_indices")
  if idx.ndim != 2 or idx.shape[0] < 1 or idx.shape[1] < 1:
    raise ValueError(f"batch_indices must be [n_steps >= 1, batch >= 1] integer indices into syn_x, got "
                     f"batch_indices.shape={idx.shape}")
  n = syn_x.shape[0]
  # the library's rule (docs/conventions.md 5): ValueError when concrete, NaN outputs (value and gradient) when traced
  valid = validation.check_values((idx >= 0) & (idx < n), batch_indices, "batch_indices",
                                  f"integer rows of syn_x in [0, {n})")
  valid = None if valid is None else jnp.all(valid)
  if validation.is_concrete_number(lr):
    validation.check_positive(lr, "lr")
  return syn_x, syn_y, idx, valid


def _poison(tree, valid):
  return tree if valid is None else jax.tree_util.tree_map(lambda x: validation.nan_where_invalid(x, valid), tree)


def unrolled_sgd(inner_loss: InnerLoss, params: Any, syn_x: jax.Array, syn_y: jax.Array, *, lr: Any,
                 batch_indices: jax.Array, first_order: bool = False) -> Any:
  """N steps of SGD on the synthetic set, theta_{i+1} = theta_i - lr grad l(theta_i; X_i) (MTT's inner loop).

  Cazenavette et al. 2022, arXiv:2203.11932, Sec. 3; TESLA (Cui et al. 2023, arXiv:2211.10586), Eq. (4). Shared
  by the dataset-distillation losses. Differentiable in `params`, `syn_x`, `syn_y` and `lr` (a `lax.scan`).

  Args:
    inner_loss: `inner_loss(params, x, y) -> scalar`, the student's training loss on a minibatch.
    params: the starting parameters theta_t (a pytree).
    syn_x: [n_syn, ...] floating synthetic inputs.
    syn_y: [n_syn, ...] their labels (integer or soft), passed to `inner_loss` row-aligned with `syn_x`.
    lr: the inner learning rate beta > 0 (a number or a scalar array, e.g. MTT's learnable rate).
    batch_indices: [n_steps, batch] integer rows of syn_x per step (full batch: every row at every step). Out of
      range: ValueError when concrete; under jit the result is NaN (docs/conventions.md, rule 5).
    first_order: if True, each inner gradient sees theta_i through `lax.stop_gradient`: the dependence of later
      parameters on earlier batches is dropped, as in TESLA Eq. (6).

  Returns:
    theta_{t+N}, a pytree like `params`.
  """
  syn_x, syn_y, idx, valid = _check_unroll(syn_x, syn_y, lr, batch_indices)
  grad_fn = jax.grad(inner_loss)

  def step(theta, rows):
    at = jax.lax.stop_gradient(theta) if first_order else theta
    g = grad_fn(at, syn_x[rows], syn_y[rows])
    return jax.tree_util.tree_map(lambda p, gi: p - lr * gi, theta, g), None

  theta, _ = jax.lax.scan(step, params, idx)
  return _poison(theta, valid)


def mtt_bptt_grad(inner_loss: InnerLoss, start_params: Any, target_params: Any, syn_x: jax.Array,
                  syn_y: jax.Array, *, lr: Any, batch_indices: jax.Array) -> MTTGrads:
  """MTT loss and its gradient by back-propagation through the whole unrolled trajectory (memory linear in N).

  Cazenavette et al., "Dataset Distillation by Matching Training Trajectories", 2022, arXiv:2203.11932, Eq. (1)
  differentiated by autodiff through `unrolled_sgd`: the baseline TESLA (arXiv:2211.10586, Sec. 4.1) replaces.

  Args:
    inner_loss: `inner_loss(params, x, y) -> scalar`.
    start_params: the expert checkpoint theta*_t (pytree).
    target_params: the expert checkpoint theta*_{t+M} (same tree).
    syn_x: [n_syn, ...] floating synthetic inputs.
    syn_y: [n_syn, ...] labels (held fixed: no gradient is returned for them).
    lr: the inner learning rate beta > 0.
    batch_indices: [n_steps, batch] integer rows of syn_x per inner step.

  Returns:
    `MTTGrads(loss, syn_x=dL/dsyn_x [n_syn, ...], lr=dL/dlr)`.
  """
  _check_params(("start_params", start_params), ("target_params", target_params))
  syn_x, syn_y, idx, valid = _check_unroll(syn_x, syn_y, lr, batch_indices)

  def objective(x, beta):
    end = unrolled_sgd(inner_loss, start_params, x, syn_y, lr=beta, batch_indices=idx)
    return mtt_loss(end, start_params, target_params)

  loss, (gx, glr) = jax.value_and_grad(objective, argnums=(0, 1))(syn_x, jnp.asarray(lr, syn_x.dtype))
  return _poison(MTTGrads(loss, gx, glr), valid)


def tesla_grad(inner_loss: InnerLoss, start_params: Any, target_params: Any, syn_x: jax.Array,
               syn_y: jax.Array, *, lr: Any, batch_indices: jax.Array) -> MTTGrads:
  """TESLA's constant-memory gradient of the MTT loss: per-step accumulation, memory independent of N.

  Cui et al., "Scaling Up Dataset Distillation to ImageNet-1K with Constant Memory", ICML 2023, arXiv:2211.10586,
  Sec. 4.1, Eqs. (4)-(6). Pass 1 runs the N inner SGD steps and sums G = sum_i g_i; pass 2 reruns them and adds,
  for each step's batch X_i,

      dL/dX_i = (2 / ||theta*_t - theta*_{t+M}||^2)
                * d/dX_i < beta (theta*_{t+M} - theta*_t) + beta^2 G, g_i(theta_{t+i}, X_i) >

  (one vector-Jacobian product of the inner gradient at fixed theta_{t+i}). The learning-rate gradient is
  dL/dbeta = -2 < G, theta*_t - beta G - theta*_{t+M} > / ||theta*_t - theta*_{t+M}||^2 at fixed G, as in the
  official code. Both equal autodiff through `unrolled_sgd(..., first_order=True)`, and full BPTT when
  n_steps = 1 (see the module docstring for what Eq. 6 drops when n_steps > 1).

  Args:
    inner_loss: `inner_loss(params, x, y) -> scalar`.
    start_params: the expert checkpoint theta*_t (pytree).
    target_params: the expert checkpoint theta*_{t+M} (same tree).
    syn_x: [n_syn, ...] floating synthetic inputs.
    syn_y: [n_syn, ...] labels (integer or soft, e.g. `tesla_soft_labels`), held fixed.
    lr: the inner learning rate beta > 0.
    batch_indices: [n_steps, batch] integer rows of syn_x per inner step (rows may repeat across steps; their
      gradients add up).

  Returns:
    `MTTGrads(loss, syn_x=dL/dsyn_x [n_syn, ...], lr=dL/dlr)`.
  """
  _check_params(("start_params", start_params), ("target_params", target_params))
  syn_x, syn_y, idx, valid = _check_unroll(syn_x, syn_y, lr, batch_indices)
  grad_fn = jax.grad(inner_loss)
  beta = jnp.asarray(lr, syn_x.dtype)
  zeros = jax.tree_util.tree_map(jnp.zeros_like, start_params)

  def forward(carry, rows):  # pass 1: the trajectory and G = sum_i g_i
    theta, gsum = carry
    g = grad_fn(theta, syn_x[rows], syn_y[rows])
    theta = jax.tree_util.tree_map(lambda p, gi: p - beta * gi, theta, g)
    return (theta, jax.tree_util.tree_map(jnp.add, gsum, g)), None

  (theta_end, gsum), _ = jax.lax.scan(forward, (start_params, zeros), idx)
  den = _tree_sqnorm(jax.tree_util.tree_map(jnp.subtract, start_params, target_params))
  den = jnp.where((den > 0) & jnp.isfinite(den), den, jnp.nan)
  # v = beta (theta*_{t+M} - theta*_t) + beta^2 G  (TESLA Eq. 6, the official code's single_term + square_term)
  v = jax.tree_util.tree_map(lambda a, b, g: beta * (b - a) + beta ** 2 * g, start_params, target_params, gsum)
  scale = 2.0 / den

  def backward(carry, rows):  # pass 2: rerun the trajectory; one VJP of g_i w.r.t. its batch per step
    theta, gx = carry
    x_i, y_i = syn_x[rows], syn_y[rows]
    g, vjp = jax.vjp(lambda x: grad_fn(theta, x, y_i), x_i)
    (dx,) = vjp(v)
    gx = gx.at[rows].add((scale * dx).astype(gx.dtype))
    theta = jax.tree_util.tree_map(lambda p, gi: p - beta * gi, theta, g)
    return (theta, gx), None

  (_, gx), _ = jax.lax.scan(backward, (start_params, jnp.zeros_like(syn_x)), idx)
  resid = jax.tree_util.tree_map(jnp.subtract, theta_end, target_params)
  loss = _tree_sqnorm(resid) / den
  glr = -2.0 * _tree_vdot(gsum, resid) / den
  return _poison(MTTGrads(loss, gx, glr), valid)


def tesla_soft_labels(logits: jax.Array, *, temperature: Any = 1.0) -> jax.Array:
  """TESLA's soft label assignment: the expert's softmax(f(theta*_{t+M}; X) / T) on the synthetic inputs.

  Cui et al. 2023, arXiv:2211.10586, Sec. 4.2 (train-free soft label assignment; distill.py `teacher_label`,
  which uses T = 1). Pass the expert's logits on the synthetic set; use the result as `syn_y` with a soft-label
  cross-entropy (`optax.losses.softmax_cross_entropy`) as the inner loss.

  Args:
    logits: [n_syn, K] floating expert logits.
    temperature: T > 0.

  Returns:
    [n_syn, K] probabilities (rows sum to 1), float32 for half-precision input, no gradient to the expert.
  """
  validation.check_positive(temperature, "temperature")
  z = validation.check_floating(logits, "logits")
  if z.ndim != 2 or z.shape[-1] < 1:
    raise ValueError(f"logits must be [n_syn, K] with K >= 1, got logits.shape={z.shape}")
  z = jax.lax.stop_gradient(z).astype(validation.compute_dtype_for(z.dtype))
  return jax.nn.softmax(z / temperature, axis=-1)
