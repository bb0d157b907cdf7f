"""Neural-collapse metrics, the simplex ETF, and the optimal mixup features of the unconstrained features model.

Paper [47]: Quinn LeBlanc Fisher, Haoming Meng, Vardan Papyan, "Pushing Boundaries: Mixup's Influence on Neural
Collapse", ICLR 2024, arXiv:2402.06171 (Sec. 3: the unconstrained features model for mixup with a fixed simplex-ETF
classifier). The metrics are those of Papyan, Han, Donoho, "Prevalence of neural collapse during the terminal phase
of deep learning training", PNAS 2020, arXiv:2008.08186 (NC1-NC3):

    NC1 = tr(Sigma_W Sigma_B^+) / K                          (within-class variability, relative to between)
    NC2 = || M M^T / ||M M^T||_F - (I - 1 1^T / K) / ||I - 1 1^T / K||_F ||_F   (M: centred class means)
    NC3 = || W / ||W||_F - M / ||M||_F ||_F^2                 (self-duality of classifier and class means)

UFM for mixup: each mixed example (classes a, b, coefficient lambda) has its own free feature h; with the classifier
W fixed to a simplex ETF, h minimises lambda CE(W h, a) + (1 - lambda) CE(W h, b) + (weight_decay / 2) ||h||^2, a
strongly convex problem solved here by gradient descent (the MSE-mixup variant with target lambda e_a + (1 - lambda)
e_b has h linear in lambda: a convex combination of the class optima).
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


def simplex_etf(num_classes: int, dim: int, dtype: Any = jnp.float32) -> jax.Array:
  """The K x d simplex equiangular tight frame: unit rows with pairwise inner products -1/(K-1), summing to 0
  (Papyan et al. 2020, arXiv:2008.08186; the fixed classifier of Fisher et al. 2024, arXiv:2402.06171,
  Sec. 3). Built on the host in float64: sqrt(K/(K-1)) (I - 1 1^T / K) restricted to an orthonormal basis of its
  range, zero-padded to d.

  Args:
    num_classes: K >= 2.
    dim: d >= K - 1.
    dtype: floating output dtype (float64 needs x64 enabled).

  Returns:
    [K, d] array of `dtype`.
  """
  for name, v, lo in (("num_classes", num_classes, 2), ("dim", dim, 1)):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
      raise ValueError(f"{name} must be a Python int >= {lo}, got {name}={v!r}")
  k = int(num_classes)
  if dim < k - 1:
    raise ValueError(f"dim must be >= num_classes - 1 = {k - 1} for a simplex ETF, got {dim=}")
  c = np.eye(k) - 1.0 / k
  basis = np.linalg.qr(c[:, : k - 1])[0]                        # orthonormal basis of the centred subspace
  e = np.sqrt(k / (k - 1)) * c @ basis                          # [K, K - 1]
  if not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(f"dtype must be a floating dtype, got {dtype=}")
  return jnp.asarray(np.pad(e, ((0, 0), (0, dim - (k - 1)))), dtype)


def nc_metrics(features: Any, labels: Any, num_classes: int, classifier: Optional[Any] = None) -> dict:
  """NC1, NC2 (and NC3 given the classifier) of Papyan, Han, Donoho 2020 (arXiv:2008.08186), the
  collapse measures of Fisher, Meng, Papyan 2024 (arXiv:2402.06171). Batch-level; every class needs >= 1
  example (ValueError when concrete).

  Args:
    features: [N, d] float last-layer features.
    labels: [N] integer classes in [0, num_classes).
    num_classes: K >= 2.
    classifier: optional [K, d] float last-layer weights.

  Returns:
    dict with float scalars "nc1", "nc2" and, with a classifier, "nc3" (0 = perfect collapse).
  """
  h = validation.check_floating(features, "features")
  if h.ndim != 2:
    raise ValueError(f"features must be [N, d], got features.shape={h.shape}")
  if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
    raise ValueError(f"num_classes must be a Python int >= 2, got {num_classes=}")
  y = validation.check_integer(labels, "labels")
  if y.shape != h.shape[:1]:
    raise ValueError(f"labels must have shape [N] = {h.shape[:1]}, got labels.shape={y.shape}")
  if classifier is not None:
    w = validation.check_floating(classifier, "classifier")
    if w.shape != (num_classes, h.shape[1]):
      raise ValueError(f"classifier must be [K, d] = {(num_classes, h.shape[1])}, got classifier.shape={w.shape}")
  valid = validation.check_labels(y, num_classes)
  h = h.astype(validation.compute_dtype_for(h.dtype))
  one = jax.nn.one_hot(y, num_classes, dtype=h.dtype)             # [N, K]
  counts = one.sum(0)
  if not validation.is_traced(y) and valid is None and bool(jnp.any(counts == 0)):
    raise ValueError(f"labels must contain every class in [0, {num_classes}) at least once (class means)")
  mu = (one.T @ h) / counts[:, None]                               # [K, d]
  mu_g = mu.mean(0)
  m = mu - mu_g                                                    # centred class means
  within = h - one @ mu
  sigma_w = within.T @ within / h.shape[0]
  sigma_b = m.T @ m / num_classes
  nc1 = jnp.trace(sigma_w @ jnp.linalg.pinv(sigma_b, hermitian=True)) / num_classes
  g = m @ m.T
  etf = jnp.eye(num_classes, dtype=h.dtype) - 1.0 / num_classes
  nc2 = jnp.linalg.norm(g / jnp.linalg.norm(g) - etf / jnp.linalg.norm(etf))
  out = {"nc1": nc1, "nc2": nc2}
  if classifier is not None:
    w = w.astype(h.dtype)
    out["nc3"] = jnp.sum((w / jnp.linalg.norm(w) - m / jnp.linalg.norm(m)) ** 2)
  return {k: validation.nan_where_invalid(v, valid) for k, v in out.items()}


def mixup_ufm_features(classifier: Any, labels_a: Any, labels_b: Any, lam: Any, *, weight_decay: float,
                       loss: Literal["ce", "mse"] = "ce", steps: int = 2000) -> jax.Array:
  """The optimal last-layer feature of each mixed example in the unconstrained features model with a fixed
  classifier (Fisher, Meng, Papyan, ICLR 2024, arXiv:2402.06171, Sec. 3): h = argmin lambda CE(W h, a) +
  (1 - lambda) CE(W h, b) + (weight_decay / 2) ||h||^2 (loss="ce"), or 1/2 ||W h - (lambda e_a + (1 - lambda)
  e_b)||^2 + (weight_decay / 2) ||h||^2 (loss="mse", the paper's contrast), by gradient descent with step
  1 / (||W||_2^2 + weight_decay) from h = 0 (strongly convex: linear convergence).

  Args:
    classifier: [K, d] float fixed classifier W (e.g. `simplex_etf`).
    labels_a: [B] integer first classes.
    labels_b: [B] integer second classes.
    lam: [B] float mixing coefficients in [0, 1].
    weight_decay: > 0.
    loss: "ce" or "mse".
    steps: gradient steps >= 1.

  Returns:
    [B, d] optimal features.
  """
  w = validation.check_floating(classifier, "classifier")
  if w.ndim != 2:
    raise ValueError(f"classifier must be [K, d], got classifier.shape={w.shape}")
  k = w.shape[0]
  labels_a = validation.check_integer(labels_a, "labels_a")   # arrays from here on (lists have no .shape)
  labels_b = validation.check_integer(labels_b, "labels_b")
  va = validation.check_labels(labels_a, k, "labels_a")
  vb = validation.check_labels(labels_b, k, "labels_b")
  lam = validation.check_floating(lam, "lam")
  if not (labels_a.shape == labels_b.shape == lam.shape) or lam.ndim != 1:
    raise ValueError(f"labels_a, labels_b and lam must share one [B] shape, got {jnp.shape(labels_a)}, "
                     f"{jnp.shape(labels_b)}, {lam.shape}")
  vl = validation.check_values((lam >= 0) & (lam <= 1), lam, "lam", "in [0, 1]")
  validation.check_positive(weight_decay, "weight_decay")
  if loss not in ("ce", "mse"):
    raise ValueError(f"loss must be 'ce' or 'mse', got {loss=}")
  if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
    raise ValueError(f"steps must be a Python int >= 1, got {steps=}")
  dt = validation.compute_dtype_for(w.dtype)
  w = w.astype(dt)
  lam = lam.astype(dt)
  target = lam[:, None] * jax.nn.one_hot(labels_a, k, dtype=dt) + (1 - lam[:, None]) * jax.nn.one_hot(labels_b, k,
                                                                                                       dtype=dt)
  step = 1.0 / (jnp.linalg.norm(w, 2) ** 2 + weight_decay)

  def grad(h):
    z = h @ w.T
    r = (jax.nn.softmax(z, -1) - target) if loss == "ce" else (z - target)
    return r @ w + weight_decay * h

  h = jax.lax.fori_loop(0, steps, lambda _, h: h - step * grad(h), jnp.zeros((lam.shape[0], w.shape[1]), dt))
  for v in (va, vb, vl):
    h = validation.nan_where_invalid(h, v)
  return h
