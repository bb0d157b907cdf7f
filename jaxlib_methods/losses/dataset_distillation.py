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
from jaxlib_methods._norms import safe_l2_norm

InnerLoss = Callable[[Any, jax.Array, jax.Array], jax.Array]


class MTTGrads(NamedTuple):
  """The MTT loss and its gradients: `loss` scalar, `syn_x` like the synthetic inputs [n_syn, ...], `lr` scalar.

  Cazenavette et al., "Dataset Distillation by Matching Training Trajectories", CVPR 2022, arXiv:2203.11932, Eq. (1);
  Cui et al., "Scaling Up Dataset Distillation to ImageNet-1K with Constant Memory" (TESLA), ICML 2023,
  arXiv:2211.10586, Eqs. (2), (5)-(6).
  """
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


# ---------------------------------------------------------------------------------------------------------------------
# [48] AST: smooth expert trajectories (Shen, Yang, Lam, arXiv:2310.10541)
# ---------------------------------------------------------------------------------------------------------------------
# The paper's text (arXiv:2310.10541v2) was not readable from this workplace, so no section or equation numbers are
# given; the forms below follow the authors' code, https://github.com/shenjiyuan123/AST-Alignment-with-Smooth-Expert
# (buffer.py / utils.py `epoch_flat` and `epoch_gp`, distill.py `weightPerturb`, `balance_loss`,
# `adaptive_middle_loss`), and say so.

AST_LOSS_DECAY = (0.5, 0.5, 0.55, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)
"""The clipping loss's per-epoch factors of the official buffer.py (`loss_decay`, epochs 0-10; 1 afterwards)."""


def ast_clipping_loss(logits: jax.Array, labels: jax.Array, *, epoch: Any, schedule: Any = AST_LOSS_DECAY,
                      axis: int = -1, where: Any = None) -> jax.Array:
  """AST's clipping loss for expert training: the cross-entropy scaled down in the first epochs, per example.

  Shen, Yang, Lam, "AST: Effective Dataset Distillation through Alignment with Smooth and High-Quality Expert
  Trajectories" (v1: "Efficient Dataset Distillation through Alignment with Smooth and High-Quality Expert
  Trajectories"), 2023, arXiv:2310.10541 (the clipping loss). Form from the official buffer.py / utils.py
  `epoch_flat`: l_clip(x, y; e) = lambda_e CE(f(x), y) with lambda_e = `schedule[e]` for e < len(schedule) and 1
  afterwards, which limits the rate of parameter change of the early expert epochs (a smoother trajectory).

  Args:
    logits: [..., K] (class axis `axis`) floating expert logits.
    labels: [...] integer class indices in [0, K).
    epoch: the expert epoch e >= 0 (a Python int or an integer scalar array; traced is fine).
    schedule: the factors lambda_0, lambda_1, ... in (0, 1] (default the official `AST_LOSS_DECAY`).
    axis: the class axis of `logits`.
    where: optional [...] bool example mask (excluded examples give 0).

  Returns:
    [...] per-example losses, in the logits' dtype (half precision computed in float32).
  """
  sched = np.asarray(schedule, np.float64)
  if sched.ndim != 1 or sched.size < 1 or not np.all((sched > 0) & (sched <= 1)):
    raise ValueError(f"schedule must be a non-empty 1-D sequence of factors in (0, 1], got schedule={schedule!r}")
  if np.ndim(epoch) != 0:
    raise ValueError(f"epoch must be a scalar (one expert epoch), got epoch.shape={np.shape(epoch)}")
  if validation.is_concrete_number(epoch):
    if isinstance(epoch, bool) or float(epoch) != int(epoch) or int(epoch) < 0:
      raise ValueError(f"epoch must be an integer >= 0, got epoch={epoch!r}")
  else:
    validation.check_integer(epoch, "epoch")
  ci = validation.classification_inputs(logits, labels, axis=axis, where=where)
  e = jnp.asarray(epoch)
  table = jnp.asarray(sched, ci.logits.dtype)
  lam = jnp.where(e < sched.size, table[jnp.clip(e, 0, sched.size - 1)], jnp.ones((), ci.logits.dtype))
  lam = validation.nan_where_invalid(lam, None if validation.is_concrete_number(epoch) else e >= 0)
  logp = jax.nn.log_softmax(ci.logits, axis=-1)
  ce = -jnp.take_along_axis(logp, ci.labels[..., None], axis=-1)[..., 0]
  return validation.finish_per_example(lam * ce, ci.valid, ci.where, ci.dtype)


def ast_gradient_penalty(input_grads: jax.Array, *, weight: Any = 0.1) -> jax.Array:
  """AST's gradient penalty for expert training, per example: weight * (||d f / d x_i||_2 - 1)^2.

  Shen, Yang, Lam 2023, arXiv:2310.10541 (the gradient penalty, added to the clipping loss); form and the
  default weight 0.1 from the official utils.py `epoch_gp` (the WGAN-GP form, Gulrajani et al. 2017, Eq. 3, on
  the expert's input gradient). Pass the input gradient of the summed outputs,
  `jax.grad(lambda x: f(params, x).sum())(x)`, so that the penalty stays differentiable in the parameters.

  Args:
    input_grads: [B, ...] floating gradients of the expert's summed outputs w.r.t. each input.
    weight: the penalty weight lambda >= 0.

  Returns:
    [B] per-example penalties, in the input's dtype (half precision computed in float32).
  """
  validation.check_nonnegative(weight, "weight")
  g = validation.check_floating(input_grads, "input_grads")
  if g.ndim < 1:
    raise ValueError(f"input_grads must be [B, ...] with a batch axis, got input_grads.shape={g.shape}")
  x = g.astype(validation.compute_dtype_for(g.dtype)).reshape(g.shape[0], int(np.prod(g.shape[1:])))
  norm = safe_l2_norm(x)   # gradient 0 at a zero input gradient, as torch's norm (not NaN)
  return (weight * jnp.square(norm - 1.0)).astype(g.dtype)


def ast_balanced_inner_weight(start_epoch: Any, *, max_start_epoch: int) -> jax.Array:
  """AST's balanced inner-loop loss: the factor on the student's inner cross-entropy for a start epoch t.

  Shen, Yang, Lam 2023, arXiv:2310.10541 (the balanced inner-loop loss); form from the official distill.py
  (`--balance_loss`): with h = max_start_epoch // 2, the factor is log_5(t - h + 8) for t >= h and
  1 / log_5(h - t + 8) for t < h, so early (large-gradient) start epochs get a smaller and late ones a larger inner
  loss. Multiply the inner loss by it, e.g. `lambda p, x, y: w * ce(p, x, y)` as `unrolled_sgd`'s `inner_loss`.

  Args:
    start_epoch: the expert start epoch t in [0, max_start_epoch] (int or integer array; any shape).
    max_start_epoch: the largest start epoch T_max >= 1 (a Python int).

  Returns:
    float32 factors of `start_epoch`'s shape (> 0).
  """
  if isinstance(max_start_epoch, bool) or not isinstance(max_start_epoch, (int, np.integer)) or max_start_epoch < 1:
    raise ValueError(f"max_start_epoch must be an int >= 1, got max_start_epoch={max_start_epoch!r}")
  t = validation.check_integer(start_epoch, "start_epoch")
  valid = validation.check_values((t >= 0) & (t <= max_start_epoch), start_epoch, "start_epoch",
                                  f"an integer epoch in [0, {max_start_epoch}]")
  h = max_start_epoch // 2
  tf = t.astype(jnp.float32)
  log5 = lambda v: jnp.log(v) / jnp.log(5.0)
  w = jnp.where(t >= h, log5(jnp.maximum(tf - h + 8.0, 1.0)), 1.0 / log5(jnp.maximum(h - tf + 8.0, 1.0)))
  return validation.nan_where_invalid(w, valid)


def ast_weight_perturbation(key: jax.Array, params: Any, *, alpha: Any = 1.0, drop_rate: float = 0.5) -> Any:
  """AST's weight perturbation of the expert start checkpoint: theta + alpha (d / ||d||_F) * theta, per leaf.

  Shen, Yang, Lam 2023, arXiv:2310.10541 (the weight perturbation); form from the official distill.py
  `weightPerturb`: per parameter tensor, d ~ N(0, I) with dropout (rate `drop_rate`; the kept entries' 1 / (1 - p)
  scale cancels in the normalisation), d / ||d||_F multiplied elementwise by the tensor itself, times alpha.

  Args:
    key: a PRNG key.
    params: the start checkpoint theta*_t (a pytree of floating arrays).
    alpha: the perturbation scale >= 0 (official defaults 0.5 and 1).
    drop_rate: the dropout rate on d, in [0, 1).

  Returns:
    A pytree like `params` (same dtypes). A leaf whose dropped-out d is all zero is left unchanged.
  """
  validation.check_nonnegative(alpha, "alpha")
  validation.check_in_interval(drop_rate, "drop_rate", 0.0, 1.0, closed_high=False)
  validation.check_float_tree(params, "params")
  leaves, treedef = jax.tree_util.tree_flatten(params)
  if not leaves:
    raise ValueError("params has no leaves (an empty parameter tree)")
  keys = jax.random.split(key, len(leaves))
  out = []
  for k, p in zip(keys, leaves):
    kn, kd = jax.random.split(k)
    ct = validation.compute_dtype_for(jnp.asarray(p).dtype)
    d = jax.random.normal(kn, jnp.shape(p), ct) * jax.random.bernoulli(kd, 1.0 - drop_rate, jnp.shape(p))
    nrm = jnp.sqrt(jnp.sum(jnp.square(d)))
    d = jnp.where(nrm > 0, d / jnp.where(nrm > 0, nrm, 1.0), 0.0)
    out.append((p + alpha * d * p.astype(ct)).astype(jnp.asarray(p).dtype))
  return jax.tree_util.tree_unflatten(treedef, out)


def ast_intermediate_matching_loss(inner_loss: InnerLoss, expert_params: Any, syn_x: jax.Array, syn_y: jax.Array, *,
                                   lr: Any, batch_indices: jax.Array) -> jax.Array:
  """MTT loss plus AST's intermediate matching terms against the expert checkpoints between start and target.

  Shen, Yang, Lam 2023, arXiv:2310.10541 (the intermediate matching loss); form from the official distill.py
  (`--adaptive_middle_loss`): the N inner steps are cut into M equal segments (M expert epochs between start
  theta*_t and target theta*_{t+M}); after segment k the student theta_{kN/M} is compared with theta*_{t+k}:

      L = L_MTT(theta_N; theta*_t, theta*_{t+M}) + sum_{k=1}^{M-1} (k / M) L_MTT(theta_{kN/M}; theta*_t, theta*_{t+k}),

  each term the normalised MTT loss (`mtt_loss`, MTT Eq. 1). With M = 1 it is `mtt_loss` after `unrolled_sgd`.
  The student runs `unrolled_sgd` segment by segment (the shared inner loop); differentiate L with `jax.grad`
  (full back-propagation through the unroll, memory linear in N).

  Args:
    inner_loss: `inner_loss(params, x, y) -> scalar`.
    expert_params: the expert checkpoints theta*_t, ..., theta*_{t+M}: a pytree whose leaves have a leading axis of
      size M + 1 >= 2.
    syn_x: [n_syn, ...] floating synthetic inputs.
    syn_y: [n_syn, ...] their labels.
    lr: the inner learning rate beta > 0.
    batch_indices: [N, batch] integer rows of syn_x per inner step; N must be a multiple of M.

  Returns:
    The scalar loss L (float32 or wider).
  """
  leaves = jax.tree_util.tree_leaves(expert_params)
  if not leaves or any(np.ndim(x) < 1 for x in leaves) or len({np.shape(x)[0] for x in leaves}) != 1:
    raise ValueError("expert_params must be a non-empty pytree whose leaves share a leading checkpoint axis of size "
                     "M + 1 >= 2")
  m = np.shape(leaves[0])[0] - 1
  if m < 1:
    raise ValueError(f"expert_params needs at least 2 checkpoints (start and target), got {m + 1}")
  syn_x, syn_y, idx, valid = _check_unroll(syn_x, syn_y, lr, batch_indices)
  if idx.shape[0] % m:
    raise ValueError(f"batch_indices must have a multiple of M = {m} steps (one segment per expert epoch), got "
                     f"batch_indices.shape={idx.shape}")
  at = lambda k: jax.tree_util.tree_map(lambda x: x[k], expert_params)
  start, seg = at(0), idx.shape[0] // m
  theta, total = start, 0.0
  for k in range(1, m + 1):
    theta = unrolled_sgd(inner_loss, theta, syn_x, syn_y, lr=lr, batch_indices=idx[(k - 1) * seg:k * seg])
    total = total + (1.0 if k == m else k / m) * mtt_loss(theta, start, at(k))
  return _poison(total, valid)


# ---------------------------------------------------------------------------------------------------------------------
# [64] DCC: dataset condensation with contrastive signals (Lee et al., ICML 2022, arXiv:2202.02916)
# ---------------------------------------------------------------------------------------------------------------------

def dc_gradient_distance(grads_a: Any, grads_b: Any) -> jax.Array:
  """DC's layer-wise gradient distance: sum over weight tensors and their output nodes of 1 - cos(A_i, B_i).

  Zhao, Mopuri, Bilen, "Dataset Condensation with Gradient Matching", ICLR 2021, arXiv:2006.05929, the layer-wise
  distance (the distance DC and DCC both use; Lee et al. 2022, arXiv:2202.02916; equation numbers not verified
  here). Each leaf with rank >= 2 is a weight tensor whose LAST axis indexes the output nodes (the JAX/Flax kernel
  layout [..., in, out]; the official PyTorch code reshapes [out, ...] the same way); 1-D leaves (biases, norms) are
  ignored, as in DC's code. The denominator is ||A_i|| ||B_i|| + 1e-6, as in the official `distance_wb`, so a zero
  column (a dead unit) counts 1 with a finite gradient.

  Args:
    grads_a: a pytree of floating gradients.
    grads_b: a pytree with `grads_a`'s structure and leaf shapes.

  Returns:
    A float32 (or wider) scalar in [0, 2 * number of output nodes].
  """
  _check_params(("grads_a", grads_a), ("grads_b", grads_b))
  total = jnp.zeros((), jnp.float32)
  for a, b in zip(jax.tree_util.tree_leaves(grads_a), jax.tree_util.tree_leaves(grads_b)):
    if np.ndim(a) < 2:
      continue
    ct = jnp.promote_types(validation.compute_dtype_for(jnp.asarray(a).dtype), jnp.float32)
    a2 = jnp.moveaxis(jnp.asarray(a, ct), -1, 0).reshape(np.shape(a)[-1], -1)
    b2 = jnp.moveaxis(jnp.asarray(b, ct), -1, 0).reshape(np.shape(b)[-1], -1)
    cos = jnp.sum(a2 * b2, -1) / (safe_l2_norm(a2) * safe_l2_norm(b2) + 1e-6)   # the official `distance_wb`
    total = total + jnp.sum(1.0 - cos)
  return total


def _check_by_class(g_real_by_class, g_syn_by_class):
  _check_params(("g_real_by_class", g_real_by_class), ("g_syn_by_class", g_syn_by_class))
  sizes = {np.shape(x)[0] if np.ndim(x) else 0 for x in jax.tree_util.tree_leaves(g_real_by_class)}
  if len(sizes) != 1 or 0 in sizes:
    raise ValueError("g_real_by_class and g_syn_by_class must be pytrees whose leaves share a leading class axis "
                     f"of size C >= 1, got leading sizes {sorted(sizes)}")


def dc_gradient_matching_loss(g_real_by_class: Any, g_syn_by_class: Any) -> jax.Array:
  """DC's class-wise gradient matching: sum_c D(grad l(T_c), grad l(S_c)), one distance per class.

  Zhao et al. 2021, arXiv:2006.05929 (class-wise gradient matching); the baseline of DCC (Lee et al., "Dataset
  Condensation with Contrastive Signals", ICML 2022, arXiv:2202.02916). Batch-level (one value for the set).

  Args:
    g_real_by_class: gradients of the loss on each class's real batch T_c: a pytree whose leaves are [C, ...].
    g_syn_by_class: the same for the synthetic batches S_c (same structure and shapes).

  Returns:
    A float32 (or wider) scalar, sum over the C classes of `dc_gradient_distance`.
  """
  _check_by_class(g_real_by_class, g_syn_by_class)
  c = np.shape(jax.tree_util.tree_leaves(g_real_by_class)[0])[0]
  at = lambda t, k: jax.tree_util.tree_map(lambda x: x[k], t)
  return sum(dc_gradient_distance(at(g_real_by_class, k), at(g_syn_by_class, k)) for k in range(c))


def dcc_gradient_matching_loss(g_real_by_class: Any, g_syn_by_class: Any) -> jax.Array:
  """DCC's gradient matching: D(sum_c grad l(T_c), sum_c grad l(S_c)), the classes' gradients summed first.

  Lee, Chun, Jung, Yun, Yoon, "Dataset Condensation with Contrastive Signals", ICML 2022, arXiv:2202.02916
  (the DCC loss; equation number not verified here): matching the gradient of the loss over all classes' data lets
  the classes' gradients cancel where they share task-irrelevant components, so the contrast between classes drives
  the synthetic set. D is DC's distance (`dc_gradient_distance`, scale invariant, so sum and mean over classes
  agree). With one class it equals `dc_gradient_matching_loss`. Batch-level.

  Args:
    g_real_by_class: gradients of the loss on each class's real batch T_c: a pytree whose leaves are [C, ...].
    g_syn_by_class: the same for the synthetic batches S_c (same structure and shapes).

  Returns:
    A float32 (or wider) scalar.
  """
  _check_by_class(g_real_by_class, g_syn_by_class)
  s = lambda t: jax.tree_util.tree_map(lambda x: jnp.sum(x, axis=0), t)
  return dc_gradient_distance(s(g_real_by_class), s(g_syn_by_class))
