"""Weight-space and output-space ensembles of two models, and the FalseFalseTrue rate.

Paper [112]: Yong Lin, Lu Tan, Yifan Hao, Ho Nam Wong, Hanze Dong, Weizhong Zhang, Yujiu Yang, Tong Zhang,
"Spurious Feature Diversification Improves Out-of-distribution Generalization", ICLR 2024, arXiv:2309.17230.
WiSE-FT (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022, arXiv:2109.01903, Eq. 1) interpolates
the weights of a pre-trained model theta_0 and a fine-tuned model theta_1:

    theta_alpha = (1 - alpha) theta_0 + alpha theta_1,

the output-space ensemble interpolates their logits the same way, and [112] counts the "FalseFalseTrue" samples:
both members wrong, the ensemble right (abstract; Sec. 2 of [112]).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxlib_methods import validation


def _check_alpha(alpha: Any) -> Any:
  if isinstance(alpha, bool) or not (validation.is_concrete_number(alpha) or validation.is_traced(alpha)):
    raise TypeError(f"alpha must be a real scalar in [0, 1], got {alpha=!r}")
  if jnp.ndim(alpha) != 0:
    raise TypeError(f"alpha must be a scalar, got alpha.shape={jnp.shape(alpha)}")
  # A traced alpha cannot be checked here: its validity comes back, so out-of-range values give NaN, not an
  # extrapolation.
  return validation.scalar_in_interval(alpha, "alpha", 0.0, 1.0)


def _check_pair(theta0: Any, theta1: Any, names: tuple[str, str]) -> None:
  validation.check_float_tree(theta0, names[0])
  validation.check_float_tree(theta1, names[1])
  s0, s1 = jax.tree.structure(theta0), jax.tree.structure(theta1)
  if s0 != s1:
    raise ValueError(f"{names[0]} and {names[1]} must have the same tree structure, got {s0} and {s1}")
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(theta0), jax.tree.leaves(theta1)):
    if jnp.shape(a) != jnp.shape(b):
      raise ValueError(f"{names[0]}{jax.tree_util.keystr(path)} and {names[1]}{jax.tree_util.keystr(path)} must share "
                       f"a shape, got {jnp.shape(a)} and {jnp.shape(b)}")


def wise_ft(theta0: Any, theta1: Any, alpha: Any) -> Any:
  """WiSE-FT: the weight-space ensemble (1 - alpha) theta0 + alpha theta1 of two models.

  Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022, arXiv:2109.01903, Eq. 1; analysed by Lin et
  al., "Spurious Feature Diversification Improves Out-of-distribution Generalization", ICLR 2024, arXiv:2309.17230
  (the weight-space ensemble of Sec. 4). Computed by `optax.incremental_update(theta1, theta0, step_size=alpha)`.

  Args:
    theta0: the pre-trained (zero-shot) parameters, a pytree of floating arrays.
    theta1: the fine-tuned parameters, the same tree structure and leaf shapes as theta0.
    alpha: the mixing coefficient in [0, 1] (0 gives theta0, 1 gives theta1); a scalar, may be traced (outside
      [0, 1]: ValueError when concrete, NaN parameters when traced).

  Returns:
    The interpolated parameters, with theta0's tree structure and leaf shapes.
  """
  _check_pair(theta0, theta1, ("theta0", "theta1"))
  valid = _check_alpha(alpha)
  out = optax.incremental_update(theta1, theta0, step_size=alpha)
  return out if valid is None else jax.tree.map(lambda x: validation.nan_where_invalid(x, valid), out)


def output_ensemble(logits0: Any, logits1: Any, alpha: Any) -> jax.Array:
  """The output-space ensemble (1 - alpha) f_0(x) + alpha f_1(x) of two models' logits.

  Lin et al., "Spurious Feature Diversification Improves Out-of-distribution Generalization", ICLR 2024,
  arXiv:2309.17230 (the output-space ensemble compared with WiSE-FT in Sec. 4).

  Args:
    logits0: the first model's logits [..., K] (floating).
    logits1: the second model's logits, the same shape as logits0.
    alpha: the weight of the second model in [0, 1]; a scalar, may be traced (outside [0, 1]: ValueError when
      concrete, NaN when traced).

  Returns:
    The mixed logits [..., K].
  """
  logits0 = validation.check_floating(logits0, "logits0")
  logits1 = validation.check_floating(logits1, "logits1")
  if logits0.shape != logits1.shape:
    raise ValueError(f"logits0 and logits1 must share a shape, got {logits0.shape} and {logits1.shape}")
  if logits0.ndim < 1:
    raise ValueError(f"logits0 must have a class axis [..., K], got logits0.shape={logits0.shape}")
  valid = _check_alpha(alpha)
  return validation.nan_where_invalid(optax.incremental_update(logits1, logits0, step_size=alpha), valid)


def false_false_true_rate(correct0: Any, correct1: Any, correct_ensemble: Any) -> jax.Array:
  """The FalseFalseTrue rate: the fraction of samples both members get wrong and the ensemble gets right.

  Lin et al., "Spurious Feature Diversification Improves Out-of-distribution Generalization", ICLR 2024,
  arXiv:2309.17230 (abstract and Sec. 2: the FalseFalseTrue phenomenon of WiSE-FT).

  Args:
    correct0: [..., N] bool, whether the first model is right on each sample.
    correct1: [..., N] bool, the second model, the same shape.
    correct_ensemble: [..., N] bool, the ensemble, the same shape.

  Returns:
    [...] float32, the mean over the last axis of (not correct0) and (not correct1) and correct_ensemble.
  """
  c0 = validation.check_bool(correct0, "correct0")
  c1 = validation.check_bool(correct1, "correct1")
  ce = validation.check_bool(correct_ensemble, "correct_ensemble")
  for name, c in (("correct1", c1), ("correct_ensemble", ce)):
    if c.shape != c0.shape:
      raise ValueError(f"{name} must have correct0's shape {c0.shape}, got {name}.shape={c.shape}")
  if c0.ndim < 1 or c0.shape[-1] == 0:
    raise ValueError(f"correct0 must have a non-empty sample axis [..., N], got correct0.shape={c0.shape}")
  return jnp.mean((~c0 & ~c1 & ce).astype(jnp.float32), axis=-1)
