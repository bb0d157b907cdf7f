"""Transfer-based adversarial attacks on ensembles of surrogate models, as pure jit-able functions.

A *model* here is any pure function `x [B, ...] -> logits [B, K]` (e.g. `functools.partial(apply, params)`, or a
`jax.tree_util.Partial` so that its parameters can be passed through `jax.jit` as arguments). Inputs live in a box
[clip_min, clip_max] (images in [0, 1]); every attack is untargeted, maximises the cross-entropy of the true labels,
and returns x_adv with ||x_adv - x||_inf <= eps inside the box. Clean inputs outside the box (or NaN) are a
ValueError when concrete, NaN examples of x_adv when traced (the library's rule for invalid values).

- `ifgsm`: I-FGSM (Kurakin et al. 2017) and MI-FGSM (Dong et al. 2018, `momentum` > 0) on an ensemble, by averaging
  logits (Liu et al. 2017), averaging losses, or cycling through the models one per iteration ("cycle": paper [106],
  Gubri et al., UAI 2022, arXiv:2011.05074, attack each iteration with the next cSGLD posterior sample).
- `cwa_attack`: paper [111], Huanran Chen, Yichi Zhang, Yinpeng Dong, Xiao Yang, Hang Su, Jun Zhu, "Rethinking Model
  Ensemble in Transfer-based Adversarial Attacks", ICLR 2024, arXiv:2303.09105: the Common Weakness Attack (MI-CWA),
  sharpness-aware minimisation towards a flat region (a reverse step) plus the cosine-similarity encourager (a
  Reptile-like inner loop over the models, then an outer MI step towards the inner result).
- `adaea_attack`, with its pieces `adaea_weights` (adaptive gradient modulation, AGM) and `disparity_reduced_filter`
  (DRF): paper [115], Bin Chen, Jiali Yin, Shukai Chen, Bohao Chen, Ximeng Liu, "An Adaptive Model Ensemble
  Adversarial Attack for Boosting Adversarial Transferability", ICCV 2023, arXiv:2308.02897.

Each function's docstring states the update and where its defaults come from (the official code where it differs
from the paper's text).
"""

from __future__ import annotations

from typing import Callable, Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods import validation

Model = Callable[[jax.Array], jax.Array]
ENSEMBLE_MODES = ("logits", "loss", "cycle")


# ----------------------------------------------------------------------------------------------------------------------
# Shared pieces.
# ----------------------------------------------------------------------------------------------------------------------

def _check_models(models: Sequence[Model], minimum: int = 1) -> tuple:
  if callable(models) and not isinstance(models, (list, tuple)):
    models = (models,)
  if not isinstance(models, (list, tuple)) or len(models) < minimum:
    raise ValueError(f"models must be a list of at least {minimum} functions x -> logits, got {models!r}")
  for i, m in enumerate(models):
    if not callable(m):
      raise TypeError(f"models[{i}] must be a function x -> logits, got {type(m).__name__}")
  return tuple(models)


def _check_inputs(x, y, eps, clip_min, clip_max):
  x = validation.check_floating(x, "x")
  y = validation.check_integer(y, "y")
  if x.ndim < 2:
    raise ValueError(f"x must be [B, ...] (a batch), got x.shape={x.shape}")
  if y.shape != x.shape[:1]:
    raise ValueError(f"y must be [B] with B = x.shape[0] = {x.shape[0]}, got y.shape={y.shape}")
  validation.check_nonnegative(eps, "eps")
  if validation.is_concrete_number(clip_min) and validation.is_concrete_number(clip_max) and clip_min >= clip_max:
    raise ValueError(f"clip_min must be < clip_max, got {clip_min=}, {clip_max=}")
  # x outside the box would be clipped into it by the first projection, far beyond the eps budget.
  valid = validation.check_values((x >= clip_min) & (x <= clip_max), x, "x",
                                  f"inside the box [clip_min, clip_max] = [{clip_min}, {clip_max}]")
  if valid is not None:  # traced: poison whole examples (a NaN pixel spreads through its example's gradient)
    valid = jnp.all(valid.reshape(valid.shape[0], -1), axis=1)
  return x, y, valid


def _check_steps(steps) -> int:
  if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, (int, np.integer)) or steps < 0:
    raise ValueError(f"steps must be a Python int >= 0, got {steps=!r}")
  return int(steps)


def cross_entropy(logits: jax.Array, y: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy of integer labels over the batch (the attacks' objective, maximised).

  logits: [B, K]; y: [B] int; returns a float32 scalar. The objective of the attacks of Kurakin et al.,
  "Adversarial Examples in the Physical World", 2017, arXiv:1607.02533; Chen et al., "Rethinking Model Ensemble in
  Transfer-based Adversarial Attacks", ICLR 2024, arXiv:2303.09105; Chen et al., "An Adaptive Model Ensemble
  Adversarial Attack for Boosting Adversarial Transferability", ICCV 2023, arXiv:2308.02897.
  """
  return jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y))


def project_linf(x_adv: jax.Array, x: jax.Array, eps, clip_min=0.0, clip_max=1.0) -> jax.Array:
  """The projection onto {z : ||z - x||_inf <= eps} intersected with the box [clip_min, clip_max].

  x_adv, x: [B, ...], same shape; returns [B, ...]. The Proj step of I-FGSM (Kurakin et al., "Adversarial Examples in
  the Physical World", 2017, arXiv:1607.02533) and of the attacks built on it (Chen et al., ICLR 2024,
  arXiv:2303.09105; Chen et al., ICCV 2023, arXiv:2308.02897).
  """
  validation.check_nonnegative(eps, "eps")
  return jnp.clip(jnp.clip(x_adv, x - eps, x + eps), clip_min, clip_max)


def _cast_into_budget(xa: jax.Array, x: jax.Array, eps, clip_min, clip_max) -> jax.Array:
  """x_adv (computed in float32) cast back to x's dtype without rounding it out of the eps-ball or the box.

  Rounding to a half-precision grid moves an entry by at most half an ulp, so an entry that it pushed outside moves
  one ulp back towards x (which lies inside both), landing on the grid point just inside.
  """
  out = xa.astype(x.dtype)
  if out.dtype == xa.dtype:
    return out
  o, xc = out.astype(xa.dtype), x.astype(xa.dtype)
  outside = (jnp.abs(o - xc) > eps) | (o < clip_min) | (o > clip_max)
  return jnp.where(outside, jnp.nextafter(out, x), out)


def _per_example_norm(g: jax.Array, ord: int) -> jax.Array:
  flat = g.reshape(g.shape[0], -1)
  n = jnp.sum(jnp.abs(flat), axis=1) if ord == 1 else jnp.sqrt(jnp.sum(flat * flat, axis=1))
  return jnp.maximum(n, 1e-12).reshape((-1,) + (1,) * (g.ndim - 1))


def _ensemble_loss(models, mode: str, x, y, weights=None):
  if mode == "logits" or weights is not None:
    w = [1.0 / len(models)] * len(models) if weights is None else [weights[i] for i in range(len(models))]
    logits = sum(wi * m(x).astype(jnp.float32) for wi, m in zip(w, models))
    return cross_entropy(logits, y)
  return sum(cross_entropy(m(x), y) for m in models) / len(models)


def input_gradient(model: Model, x: jax.Array, y: jax.Array) -> jax.Array:
  """d CE(model(x), y) / dx (the batch-mean loss: each example's gradient scaled by 1 / B).

  x: [B, ...]; y: [B] int; returns [B, ...] like x. The input gradient of I-FGSM (Kurakin et al., "Adversarial
  Examples in the Physical World", 2017, arXiv:1607.02533) and of the ensemble attacks of Chen et al., ICLR 2024,
  arXiv:2303.09105 and Chen et al., ICCV 2023, arXiv:2308.02897.
  """
  return jax.grad(lambda z: cross_entropy(model(z), y))(x)


# ----------------------------------------------------------------------------------------------------------------------
# I-FGSM / MI-FGSM on an ensemble.
# ----------------------------------------------------------------------------------------------------------------------

def ifgsm(models: Sequence[Model], x: jax.Array, y: jax.Array, *, eps: float, step_size: float, steps: int,
          momentum: float = 0.0, ensemble: Literal["logits", "loss", "cycle"] = "logits", clip_min: float = 0.0,
          clip_max: float = 1.0) -> jax.Array:
  """I-FGSM / MI-FGSM against an ensemble of surrogate models.

  x_{t+1} = Proj(x_t + alpha sign(v_{t+1})),  v_{t+1} = mu v_t + grad_t / ||grad_t||_1 (per example; mu = 0 gives
  I-FGSM, v = grad), grad_t = d L_t / dx at x_t, with L_t the CE of the averaged logits ("logits"), the average of the
  models' CEs ("loss"), or the CE of model t mod S alone ("cycle", Gubri et al. 2022: one posterior sample per
  iteration).

  Args:
    models: S surrogate models x -> logits.
    x: clean inputs [B, ...] in [clip_min, clip_max].
    y: true labels [B] (int).
    eps: L_inf budget (>= 0).
    step_size: alpha per iteration.
    steps: number of iterations (a Python int).
    momentum: mu >= 0 (MI-FGSM uses 1.0).
    ensemble: "logits", "loss" or "cycle".
    clip_min: lower end of the input box.
    clip_max: upper end of the input box.

  Returns:
    x_adv [B, ...] (x's dtype).

  References:
    Kurakin, Goodfellow, Bengio. "Adversarial Examples in the Physical World". ICLR workshop 2017.
    arXiv:1607.02533 (I-FGSM).
    Dong, Liao, Pang, Su, Zhu, Hu, Li. "Boosting Adversarial Attacks with Momentum". CVPR 2018. arXiv:1710.06081,
    Algorithm 1 (MI-FGSM) and eq. (7) (ensemble of logits).
    Gubri, Cordy, Papadakis, Le Traon, Sen. "Efficient and Transferable Adversarial Examples from Bayesian Neural
    Networks". UAI 2022. arXiv:2011.05074, Sec. 3 (one cSGLD sample per attack iteration).
  """
  models = _check_models(models)
  x, y, valid = _check_inputs(x, y, eps, clip_min, clip_max)
  steps = _check_steps(steps)
  validation.check_nonnegative(step_size, "step_size")
  validation.check_nonnegative(momentum, "momentum")
  if ensemble not in ENSEMBLE_MODES:
    raise ValueError(f"ensemble must be one of {ENSEMBLE_MODES}, got {ensemble=!r}")
  dtype = jnp.promote_types(x.dtype, jnp.float32)
  x0 = x.astype(dtype)

  def grad_at(t, xa):
    if ensemble == "cycle":
      branches = [lambda z, m=m: input_gradient(m, z, y) for m in models]
      return jax.lax.switch(t % len(models), branches, xa) if len(models) > 1 else branches[0](xa)
    return jax.grad(lambda z: _ensemble_loss(models, ensemble, z, y))(xa)

  def body(t, carry):
    xa, v = carry
    g = grad_at(t, xa)
    v = momentum * v + g / _per_example_norm(g, 1)
    xa = project_linf(xa + step_size * jnp.sign(v), x0, eps, clip_min, clip_max)
    return xa, v

  xa, _ = jax.lax.fori_loop(0, steps, body, (x0, jnp.zeros_like(x0)))
  return validation.nan_where_invalid(_cast_into_budget(xa, x, eps, clip_min, clip_max), valid)


# ----------------------------------------------------------------------------------------------------------------------
# CWA: Common Weakness Attack (MI-CWA).
# ----------------------------------------------------------------------------------------------------------------------

def cwa_attack(models: Sequence[Model], x: jax.Array, y: jax.Array, *, eps: float, steps: int,
               step_size: float | None = None, reverse_step_size: float | None = None,
               inner_step_size: float = 250.0, momentum: float = 1.0, clip_min: float = 0.0,
               clip_max: float = 1.0) -> jax.Array:
  """MI-CWA (Chen et al., ICLR 2024): MI-SAM's reverse step plus MI-CSE's inner loop over the models.

  Each outer iteration t, from x_t:
    1. reverse (sharpness-aware) step: x <- x_t - r sign(grad L_ens(x_t)) (towards lower ensemble loss: the
       attack then maximises the loss over a neighbourhood, i.e. seeks a flat maximum);
    2. inner loop over the models i = 1..S (the cosine-similarity encourager, a Reptile-like pass):
       v <- mu v + g_i / ||g_i||_2 (per example), x <- Proj(x + beta v), g_i the gradient of model i's CE at x;
    3. outer MI step towards the inner result: m <- mu m + (x - x_t) / ||x - x_t||_1 (per example),
       x_{t+1} = Proj(x_t + xi sign(m)).
  v (the inner momentum) persists across outer iterations, as in the official code.

  Args:
    models: S >= 1 surrogate models.
    x: clean inputs [B, ...].
    y: true labels [B] (int).
    eps: L_inf budget.
    steps: outer iterations (the official code: 10).
    step_size: xi, the outer step (default eps / 5, as the official `ksi = 16/255/5` for eps = 16/255).
    reverse_step_size: r (default eps / 15, the official 16/255/15).
    inner_step_size: beta, applied to per-example l2-normalised gradients (official 250 for 224x224x3 images: a
      per-pixel step of ~250 / sqrt(150528) ~ 0.64; scale it with sqrt(input dimension)).
    momentum: mu for both momenta (official 1.0).
    clip_min: lower end of the input box.
    clip_max: upper end of the input box.

  Returns:
    x_adv [B, ...].

  References:
    Chen, Zhang, Dong, Yang, Su, Zhu. "Rethinking Model Ensemble in Transfer-based Adversarial Attacks". ICLR 2024.
    arXiv:2303.09105, Algorithm 1 (MI-CWA) and the official `MI_CommonWeakness` implementation.
  """
  models = _check_models(models)
  x, y, valid = _check_inputs(x, y, eps, clip_min, clip_max)
  steps = _check_steps(steps)
  xi = eps / 5.0 if step_size is None else step_size
  r = eps / 15.0 if reverse_step_size is None else reverse_step_size
  for name, v in (("step_size", xi), ("reverse_step_size", r), ("inner_step_size", inner_step_size),
                  ("momentum", momentum)):
    validation.check_nonnegative(v, name)
  dtype = jnp.promote_types(x.dtype, jnp.float32)
  x0 = x.astype(dtype)

  def body(_, carry):
    xt, v, m = carry
    g = jax.grad(lambda z: _ensemble_loss(models, "logits", z, y))(xt)
    xs = project_linf(xt - r * jnp.sign(g), x0, eps, clip_min, clip_max)
    for model in models:
      gi = input_gradient(model, xs, y)
      v = momentum * v + gi / _per_example_norm(gi, 2)
      xs = project_linf(xs + inner_step_size * v, x0, eps, clip_min, clip_max)
    d = xs - xt
    m = momentum * m + d / _per_example_norm(d, 1)
    return project_linf(xt + xi * jnp.sign(m), x0, eps, clip_min, clip_max), v, m

  z = jnp.zeros_like(x0)
  xa, _, _ = jax.lax.fori_loop(0, steps, body, (x0, z, z))
  return validation.nan_where_invalid(_cast_into_budget(xa, x, eps, clip_min, clip_max), valid)


# ----------------------------------------------------------------------------------------------------------------------
# AdaEA: adaptive gradient modulation + disparity-reduced filter.
# ----------------------------------------------------------------------------------------------------------------------

def adaea_weights(models: Sequence[Model], x: jax.Array, x_adv: jax.Array, y: jax.Array, grads: Sequence[jax.Array],
                  *, eps: float, step_size: float, beta: float = 10.0, clip_min: float = 0.0,
                  clip_max: float = 1.0) -> jax.Array:
  """AdaEA's adaptive gradient modulation (AGM): ensemble weights from how well each model's step transfers.

  x^j = Proj(x_adv + alpha sign(g_j)) is one I-FGSM step on model j alone; its transferability to the others is
  w_j = beta * sum_{i != j} L_i(x^j) / L_i(x^i)  (L_i the batch-mean CE of model i), and the weights are
  softmax(w). The official code computes them at the first iteration of its I-FGSM variant. L_i(x^i) is floored at
  1e-12 (a saturated model's CE is exactly 0 in float32, where the official ratio is NaN).

  Args:
    models: S >= 2 models.
    x: clean inputs [B, ...]; x_adv: the current adversarial inputs; y: labels [B].
    grads: the S input gradients of the models' losses at x_adv.
    eps: L_inf budget.
    step_size: I-FGSM step alpha.
    beta: temperature of the softmax (official 10).
    clip_min: lower end of the input box.
    clip_max: upper end of the input box.

  Returns:
    [S] float32 weights summing to 1.

  References:
    Chen, Yin, Chen, Chen, Liu. "An Adaptive Model Ensemble Adversarial Attack for Boosting Adversarial
    Transferability". ICCV 2023. arXiv:2308.02897, Sec. 3.2 (AGM) and the official `AdaEA_Base.agm`.
  """
  models = _check_models(models, 2)
  if len(grads) != len(models):
    raise ValueError(f"grads must hold one gradient per model: {len(grads)} vs {len(models)}")
  s = len(models)
  steps = [project_linf(x_adv + step_size * jnp.sign(g), x, eps, clip_min, clip_max) for g in grads]
  # floored: a saturated model's CE can be exactly 0 in float32, and 0 / 0 would make every weight NaN
  own = [jnp.maximum(cross_entropy(models[i](steps[i]), y), 1e-12) for i in range(s)]
  w = []
  for j in range(s):
    w.append(beta * sum(cross_entropy(models[i](steps[j]), y) / own[i] for i in range(s) if i != j))
  return jax.nn.softmax(jnp.stack(w).astype(jnp.float32))


def disparity_reduced_filter(grads: Sequence[jax.Array], *, threshold: float = -0.3, channel_axis: int = -1) -> jax.Array:
  """AdaEA's disparity-reduced filter (DRF): keep the input locations where the models' gradients agree.

  At every location (all axes but the batch and `channel_axis`), the cosine similarity of the per-model gradient
  vectors along `channel_axis` is averaged over all model pairs; the filter is 1 where that mean is >= threshold and
  0 elsewhere, broadcast along the channel axis. (The official code averages each model's mean similarity to the
  others over the models, leaving out the last model's row; the mean over all pairs here is the paper's
  definition.)

  Args:
    grads: S >= 2 gradients of the same shape [B, ..., C, ...].
    threshold: the similarity threshold (official default -0.3).
    channel_axis: the axis the cosine is taken along (-1 for NHWC images; for flat vectors [B, D] the whole vector).

  Returns:
    A float32 0/1 array of the gradients' shape with size 1 along `channel_axis`.

  References:
    Chen, Yin, Chen, Chen, Liu. "An Adaptive Model Ensemble Adversarial Attack for Boosting Adversarial
    Transferability". ICCV 2023. arXiv:2308.02897, Sec. 3.3 (DRF).
  """
  if len(grads) < 2:
    raise ValueError(f"disparity_reduced_filter needs at least 2 gradients, got {len(grads)}")
  shape = np.shape(grads[0])
  if any(np.shape(g) != shape for g in grads):
    raise ValueError(f"all gradients must have the same shape, got {[np.shape(g) for g in grads]}")
  ax = validation.check_axis(channel_axis, len(shape), "channel_axis")
  if ax == 0:
    raise ValueError("channel_axis must not be the batch axis 0")
  unit = [g.astype(jnp.float32) / jnp.maximum(jnp.linalg.norm(g.astype(jnp.float32), axis=ax, keepdims=True), 1e-8)
          for g in grads]
  s = len(unit)
  total = sum(jnp.sum(unit[i] * unit[j], axis=ax, keepdims=True) for i in range(s) for j in range(i + 1, s))
  mean = total / (s * (s - 1) / 2)
  return (mean >= threshold).astype(jnp.float32)


def adaea_attack(models: Sequence[Model], x: jax.Array, y: jax.Array, *, eps: float, step_size: float, steps: int,
                 beta: float = 10.0, threshold: float = -0.3, channel_axis: int = -1, agm_every_step: bool = False,
                 use_agm: bool = True, use_drf: bool = True, clip_min: float = 0.0,
                 clip_max: float = 1.0) -> jax.Array:
  """AdaEA on I-FGSM: adaptively weighted logit ensemble, gradient filtered by the DRF, sign step.

  Per iteration: g_i = grad of model i's CE at x_t; weights alpha = `adaea_weights` (at the first iteration, as the
  official I-FGSM variant, or every iteration with `agm_every_step`); filter B = `disparity_reduced_filter`(g);
  g = grad of CE(sum_i alpha_i f_i(x_t)) * B; x_{t+1} = Proj(x_t + step_size sign(g)). With use_agm = use_drf = False
  it is I-FGSM on the equally weighted logit ensemble.

  Args:
    models: S >= 2 models (heterogeneous architectures welcome).
    x: clean inputs [B, ...].
    y: true labels [B] (int).
    eps: L_inf budget (official 16/255).
    step_size: alpha per iteration (official 1.6/255).
    steps: iterations (official 10).
    beta: AGM temperature (official 10).
    threshold: DRF threshold (official -0.3).
    channel_axis: the DRF's cosine axis.
    agm_every_step: recompute the AGM weights at every iteration (default: first iteration only).
    use_agm: use the adaptive weights (False: equal weights; the paper's ablation).
    use_drf: apply the disparity-reduced filter (False: the paper's ablation).
    clip_min: lower end of the input box.
    clip_max: upper end of the input box.

  Returns:
    x_adv [B, ...].

  References:
    Chen, Yin, Chen, Chen, Liu. "An Adaptive Model Ensemble Adversarial Attack for Boosting Adversarial
    Transferability". ICCV 2023. arXiv:2308.02897, Algorithm 1 and the official `AdaEA_IFGSM`.
  """
  models = _check_models(models, 2)
  x, y, valid = _check_inputs(x, y, eps, clip_min, clip_max)
  steps = _check_steps(steps)
  validation.check_nonnegative(step_size, "step_size")
  for name, flag in (("agm_every_step", agm_every_step), ("use_agm", use_agm), ("use_drf", use_drf)):
    if not isinstance(flag, bool):
      raise TypeError(f"{name} must be a bool, got {name}={flag!r}")
  validation.check_axis(channel_axis, x.ndim, "channel_axis")
  dtype = jnp.promote_types(x.dtype, jnp.float32)
  x0 = x.astype(dtype)
  s = len(models)
  uniform = jnp.full((s,), 1.0 / s, jnp.float32)

  def body(t, carry):
    xa, w = carry
    grads = [input_gradient(m, xa, y) for m in models]
    if use_agm:
      new_w = adaea_weights(models, x0, xa, y, grads, eps=eps, step_size=step_size, beta=beta, clip_min=clip_min,
                            clip_max=clip_max)
      w = new_w if agm_every_step else jnp.where(t == 0, new_w, w)
    g = jax.grad(lambda z: cross_entropy(sum(w[i] * models[i](z).astype(jnp.float32) for i in range(s)), y))(xa)
    if use_drf:
      g = g * disparity_reduced_filter(grads, threshold=threshold, channel_axis=channel_axis)
    return project_linf(xa + step_size * jnp.sign(g), x0, eps, clip_min, clip_max), w

  xa, _ = jax.lax.fori_loop(0, steps, body, (x0, uniform))
  return validation.nan_where_invalid(_cast_into_budget(xa, x, eps, clip_min, clip_max), valid)


def transfer_success_rate(model: Model, x_adv: jax.Array, y: jax.Array, where: jax.Array | None = None) -> jax.Array:
  """The fraction of (selected) examples that `model` misclassifies on x_adv (untargeted attack success).

  x_adv: [B, ...]; y: [B] int; where: optional [B] mask; returns a float32 scalar. The transfer success rate reported
  by Chen et al., "Rethinking Model Ensemble in Transfer-based Adversarial Attacks", ICLR 2024, arXiv:2303.09105, and
  Chen et al., "An Adaptive Model Ensemble Adversarial Attack for Boosting Adversarial Transferability", ICCV 2023,
  arXiv:2308.02897.
  """
  logits = model(x_adv)
  y = validation.check_integer(y, "y")
  if y.shape != jnp.shape(logits)[:-1]:
    raise ValueError(f"y must be [B], one label per row of the logits {jnp.shape(logits)}, got y.shape={y.shape}")
  wrong = (jnp.argmax(logits, axis=-1) != y).astype(jnp.float32)
  if where is None:
    return jnp.mean(wrong)
  if jnp.shape(where) != y.shape:
    raise ValueError(f"where must be [B], one entry per example like y {y.shape}, got where.shape={jnp.shape(where)}")
  w = jnp.asarray(where, jnp.float32)
  return jnp.sum(wrong * w) / jnp.maximum(jnp.sum(w), 1.0)


__all__ = ["ENSEMBLE_MODES", "Model", "adaea_attack", "adaea_weights", "cross_entropy", "cwa_attack",
           "disparity_reduced_filter", "ifgsm", "input_gradient", "project_linf", "transfer_success_rate"]
