"""Dynamic loss-based sample reweighting (LinUpper, Quadratic, Extremes).

Paper [78]: Daouda Sow, Herbert Woisetschlaeger, Saikiran Bulusu, Shiqiang Wang, Hans-Arno Jacobsen, Yingbin Liang,
"Dynamic Loss-Based Sample Reweighting for Improved Large Language Model Pretraining", ICLR 2025,
arXiv:2502.06733 (the reweighting strategies).

Per batch, each sample's loss is mapped to a weight that does not carry gradient:

  1. normalise the batch losses to [-delta, delta]:  l~_i = 2 delta (l_i - l_min) / (l_max - l_min) - delta
     (the denominator floored at 1e-6, so equal losses give l~ = -delta for all);
  2. apply a strategy g(l~):
       linupper   min(l~ + delta, delta)   (down-weights the lowest-loss samples, flat above the middle)
       quadratic  1 - l~^2 / delta^2       (favours medium losses)
       extremes   |l~|                     (favours the lowest and highest losses)
       uniform    0                        (the baseline: equal weights)
  3. weights w_i = softmax(g(l~) / r)_i, with temperature r > 0.

This follows the authors' reference implementation (as reproduced by DataFlex's `LossWeighter`, which states it
matches the reference: normalise, strategy, exp(./r) after subtracting the max, divide by the sum). We return the
weights scaled to mean 1 (w_i * B), so `reweighted_mean = mean(w * l)` equals the reference's sum(w * l) with
weights summing to 1, and uniform weights give the plain mean.
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp

from jaxlib_methods import validation
from jaxlib_methods.validation import check_positive

Strategy = Literal["linupper", "quadratic", "extremes", "uniform"]
_STRATEGIES = ("linupper", "quadratic", "extremes", "uniform")


def _check_batch_losses(per_example_loss: Any) -> jax.Array:
  l = validation.check_floating(per_example_loss, "per_example_loss")
  if l.ndim != 1:
    raise ValueError(f"per_example_loss must have shape [B], got per_example_loss.shape={l.shape}")
  validation.check_min_size(l, "per_example_loss", 1)
  return l


def normalize_batch_losses(per_example_loss: jax.Array, *, delta: Any = 1.0) -> jax.Array:
  """Min-max normalise the batch losses to [-delta, delta] (Sow et al. 2025, arXiv:2502.06733).

  [B] floating (B >= 1) -> [B] float32, no gradient; all NaN if a loss is NaN (the batch min and max are NaN).
  """
  check_positive(delta, "delta")
  l = jax.lax.stop_gradient(_check_batch_losses(per_example_loss)).astype(jnp.float32)
  lo, hi = jnp.min(l), jnp.max(l)
  denom = jnp.maximum(hi - lo, 1e-6)
  return 2.0 * delta * (l - lo) / denom - delta


def loss_reweighting(per_example_loss: jax.Array, strategy: Strategy = "linupper", *, delta: Any = 1.0,
                     r: Any = 1.0) -> jax.Array:
  """Loss-based sample weights for one batch (Sow et al. 2025, arXiv:2502.06733).

  Args:
    per_example_loss: [B] per-sample losses (e.g. mean token loss per sequence). Must be finite.
    strategy: 'linupper' (default), 'quadratic', 'extremes' or 'uniform'.
    delta: half-width delta > 0 of the normalised loss range.
    r: softmax temperature r > 0 (smaller = more peaked weights).

  Returns:
    [B] float32 weights, >= 0, mean 1, with no gradient (stop-gradient, as in the paper); all NaN if a loss is NaN
    or infinite.
  """
  _check_batch_losses(per_example_loss)
  if strategy not in _STRATEGIES:
    raise ValueError(f"strategy must be one of {_STRATEGIES}, got {strategy=}")
  check_positive(r, "r")
  lt = normalize_batch_losses(per_example_loss, delta=delta)
  if strategy == "linupper":
    g = jnp.minimum(lt + delta, delta)
  elif strategy == "quadratic":
    g = 1.0 - lt ** 2 / delta ** 2
  elif strategy == "extremes":
    g = jnp.abs(lt)
  else:
    g = jnp.zeros_like(lt)
  w = jax.nn.softmax(g / r)
  return w * lt.shape[0] if strategy != "uniform" else jnp.where(jnp.isnan(lt), lt, w * lt.shape[0])


def reweighted_mean(per_example_loss: jax.Array, weights: jax.Array) -> jax.Array:
  """mean_i(stop_gradient(w_i) * l_i): the reweighted batch objective (Sow et al. 2025, arXiv:2502.06733).

  Args:
    per_example_loss: [B] floating, B >= 1. weights: [B] finite, >= 0 (negative or non-finite weights: ValueError
      eagerly, NaN under jit).

  Returns:
    Scalar in the losses' dtype.
  """
  l = _check_batch_losses(per_example_loss)
  w = validation.check_floating(weights, "weights")
  if w.shape != l.shape:
    raise ValueError(f"per_example_loss and weights must both have shape [B], got per_example_loss.shape={l.shape}, "
                     f"weights.shape={w.shape}")
  valid = validation.check_positive_values(w, "weights", l.shape, allow_zero=True)
  out = jnp.mean(jax.lax.stop_gradient(w).astype(l.dtype) * l)
  return validation.nan_where_invalid(out, valid)


__all__ = ["loss_reweighting", "normalize_batch_losses", "reweighted_mean"]
