"""A training-free Gaussian discriminant analysis (GDA) head, ensembled with zero-shot logits ([128]).

Zhengbo Wang, Jian Liang, Lijun Sheng, Ran He, Zilei Wang, Tieniu Tan, "A Hard-to-Beat Baseline for Training-free
CLIP-based Adaptation", ICLR 2024, arXiv:2402.04087, Sec. 3. Classes are Gaussians with one shared covariance,
x | y = k ~ N(mu_k, Sigma); Bayes' rule then gives a linear classifier (Eq. 3)

  p(y = k | x) = softmax_k(w_k^T x + b_k),  w_k = Sigma^{-1} mu_k,  b_k = log p_k - 1/2 mu_k^T Sigma^{-1} mu_k,

whose parameters are estimated, with no gradient step, from the class means and the pooled within-class covariance
of the few-shot features (`gda_fit`). In high dimension the precision is estimated with the empirical Bayes
ridge-type estimator of Eq. 4, Sigma^{-1} = D ((N - 1) Sigma_hat + tr(Sigma_hat) I_D)^{-1} (`shrinkage=
"empirical_bayes"`, as we read Eq. 4: its overall scale multiplies every w_k and b_k alike, so with uniform priors
it leaves the GDA argmax unchanged and only rescales the ensemble weight); `shrinkage=None` is the plain
maximum-likelihood LDA (Sigma_hat inverted as is), and a float `shrinkage=lam` uses (Sigma_hat + lam I)^{-1}. The
final classifier ensembles the GDA logits with CLIP's zero-shot logits (Sec. 3.2):
logits = zero_shot_logits + alpha * (x W^T + b) (`gda_ensemble_logits`).
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


def gda_fit(feats: jax.Array, labels: jax.Array, num_classes: int, *,
            shrinkage: Union[None, float, Literal["empirical_bayes"]] = "empirical_bayes",
            priors: Union[Literal["uniform", "empirical"], jax.Array] = "uniform") -> tuple[jax.Array, jax.Array]:
  """Fits the shared-covariance GDA (LDA) classifier in closed form: no training steps.

  Wang et al., "A Hard-to-Beat Baseline for Training-free CLIP-based Adaptation", ICLR 2024, arXiv:2402.04087,
  Eq. 3 (w_k = Sigma^{-1} mu_k, b_k = log p_k - mu_k^T Sigma^{-1} mu_k / 2) with the class means mu_k and the
  pooled within-class covariance Sigma_hat = sum_i (x_i - mu_{y_i})(x_i - mu_{y_i})^T / (N - 1), and the precision
  of Eq. 4 (see the module docstring for `shrinkage`). Computed in float32 (float64 under x64 for float64 input).

  Args:
    feats: [N, D] floating features (CLIP image embeddings in the paper), N >= 2.
    labels: [N] integer class labels in [0, num_classes); every class needs at least one example.
    num_classes: K >= 2.
    shrinkage: "empirical_bayes" (Eq. 4), None (plain inverse: the maximum-likelihood LDA, needs N - K >= D for a
      nonsingular Sigma_hat) or a float lam > 0 ((Sigma_hat + lam I)^{-1}).
    priors: "uniform" (log p_k = -log K, the paper's few-shot setting), "empirical" (class frequencies) or a [K]
      array of positive prior probabilities.

  Returns:
    (W, b): W [K, D] the class weights and b [K] the biases; logits = feats @ W.T + b.
  """
  x = validation.check_floating(feats, "feats")
  if x.ndim != 2 or x.shape[0] < 2:
    raise ValueError(f"feats must be [N, D] with N >= 2, got feats.shape={x.shape}")
  if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
    raise ValueError(f"num_classes must be an int >= 2, got {num_classes=!r}")
  y = validation.check_integer(labels, "labels")
  if y.shape != x.shape[:1]:
    raise ValueError(f"labels must be [N] = [{x.shape[0]}], got labels.shape={y.shape}")
  valid = validation.check_labels(y, num_classes, "labels")   # traced invalid labels: W and b become NaN
  if not (shrinkage is None or shrinkage == "empirical_bayes"
          or (isinstance(shrinkage, (int, float)) and not isinstance(shrinkage, bool) and shrinkage > 0)):
    raise ValueError(f"shrinkage must be 'empirical_bayes', None or a float > 0, got {shrinkage=!r}")
  if not validation.is_traced(y):
    counts = np.bincount(np.asarray(y), minlength=num_classes)
    if (counts == 0).any():
      raise ValueError(f"labels must contain every class at least once; classes {np.flatnonzero(counts == 0)[:5]} "
                       "have no example")
  dtype = jnp.promote_types(x.dtype, jnp.float32)
  x = x.astype(dtype)
  n, d = x.shape
  onehot = jax.nn.one_hot(y, num_classes, dtype=dtype)                        # [N, K]
  counts = onehot.sum(0)
  mu = (onehot.T @ x) / counts[:, None]                                       # [K, D]
  centred = x - mu[y]
  cov = centred.T @ centred / (n - 1)                                         # pooled within-class Sigma_hat
  eye = jnp.eye(d, dtype=dtype)
  if shrinkage == "empirical_bayes":
    precision = d * jnp.linalg.inv((n - 1) * cov + jnp.trace(cov) * eye)      # Eq. 4
  elif shrinkage is None:
    precision = jnp.linalg.inv(cov)
  else:
    precision = jnp.linalg.inv(cov + shrinkage * eye)
  precision = (precision + precision.T) / 2
  if isinstance(priors, str):
    if priors == "uniform":
      log_p = jnp.full((num_classes,), -jnp.log(num_classes), dtype)
    elif priors == "empirical":
      log_p = jnp.log(counts / n)
    else:
      raise ValueError(f"priors must be 'uniform', 'empirical' or a [K] array, got {priors=!r}")
  else:
    p = validation.check_floating(priors, "priors")
    if p.shape != (num_classes,):
      raise ValueError(f"priors must be [{num_classes}], got priors.shape={p.shape}")
    if not validation.is_traced(p) and not np.all(np.asarray(p) > 0):
      raise ValueError("priors must be positive probabilities")
    log_p = jnp.log(p.astype(dtype))
  w = mu @ precision                                                          # rows Sigma^{-1} mu_k (symmetric)
  b = log_p - 0.5 * jnp.sum(w * mu, -1)
  if valid is not None:
    ok = jnp.all(valid)
    w, b = validation.nan_where_invalid(w, ok), validation.nan_where_invalid(b, ok)
  return w, b


def gda_ensemble_logits(feats: jax.Array, W: jax.Array, b: jax.Array, zero_shot_logits: Optional[jax.Array] = None,
                        *, alpha: Any = 1.0) -> jax.Array:
  """The training-free classifier's logits: zero-shot logits + alpha * GDA logits.

  Wang et al., "A Hard-to-Beat Baseline for Training-free CLIP-based Adaptation", ICLR 2024, arXiv:2402.04087,
  Sec. 3.2 (ensemble with the zero-shot classifier, alpha chosen on validation data in the paper):
  logits = zero_shot_logits + alpha * (feats @ W.T + b). Without `zero_shot_logits` it is the GDA head alone
  (times alpha).

  Args:
    feats: [..., D] floating features.
    W: [K, D] GDA weights from `gda_fit`.
    b: [K] GDA biases.
    zero_shot_logits: optional [..., K] logits of the zero-shot (text-prototype) classifier, e.g.
      100 * normalize(feats) @ normalize(text_embeddings).T in CLIP.
    alpha: the ensemble weight (>= 0 when concrete).

  Returns:
    [..., K] logits.
  """
  x = validation.check_floating(feats, "feats")
  W = validation.check_floating(W, "W")
  b = validation.check_floating(b, "b")
  if W.ndim != 2 or b.shape != W.shape[:1]:
    raise ValueError(f"W must be [K, D] and b [K], got W.shape={W.shape}, b.shape={b.shape}")
  if x.ndim < 1 or x.shape[-1] != W.shape[1]:
    raise ValueError(f"feats must be [..., {W.shape[1]}], got feats.shape={x.shape}")
  if validation.is_concrete_number(alpha) and float(alpha) < 0:
    raise ValueError(f"alpha must be >= 0, got {alpha=}")
  logits = alpha * (x @ W.T.astype(x.dtype) + b.astype(x.dtype))
  if zero_shot_logits is not None:
    z = validation.check_floating(zero_shot_logits, "zero_shot_logits")
    if z.shape != logits.shape:
      raise ValueError(f"zero_shot_logits must be {logits.shape}, got zero_shot_logits.shape={z.shape}")
    logits = z.astype(logits.dtype) + logits
  return logits
