"""Shared pieces of the self-supervised / contrastive toy experiments (not an experiment: no PAPER).

Small MLP encoders as plain pytrees (so a whole grid of seeds or temperatures trains in one vmapped, jitted scan),
float64 NumPy evaluation (ridge linear probe, k-means, Hungarian cluster accuracy, rank correlation) and the seed
statistics that claims about differences between methods are judged with (mean and a t-interval over seeds).
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

# Two-sided 97.5% Student-t quantiles by degrees of freedom (a 95% interval for a mean of n = dof + 1 seeds).
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         15: 2.131, 20: 2.086, 30: 2.042}


def mlp_init(key: jax.Array, sizes: Sequence[int]) -> list:
  """He-initialised MLP weights for layer widths `sizes` (input first): a list of {"w", "b"}."""
  keys = jax.random.split(key, len(sizes) - 1)
  return [{"w": jax.random.normal(k, (a, b)) * np.sqrt(2.0 / a), "b": jnp.zeros((b,))}
          for k, a, b in zip(keys, sizes[:-1], sizes[1:])]


def mlp_apply(params: list, x: jax.Array) -> jax.Array:
  """ReLU MLP, linear last layer. x: [..., sizes[0]] -> [..., sizes[-1]]."""
  for layer in params[:-1]:
    x = jax.nn.relu(x @ layer["w"] + layer["b"])
  return x @ params[-1]["w"] + params[-1]["b"]


def l2_normalize(z: jax.Array) -> jax.Array:
  return z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)


def ridge_probe_predict(f_train, y_train, f_test, num_classes: int, ridge: float = 1e-2) -> np.ndarray:
  """Linear probe: ridge regression onto one-hot labels (float64 NumPy, with a bias); the argmax class of each test
  row. f_train [n, d], y_train [n] ints in [0, num_classes), f_test [m, d] -> [m]."""
  f_train = np.concatenate([np.asarray(f_train, np.float64), np.ones((len(f_train), 1))], 1)
  f_test = np.concatenate([np.asarray(f_test, np.float64), np.ones((len(f_test), 1))], 1)
  rhs = np.zeros((f_train.shape[1], num_classes))
  np.add.at(rhs.T, np.asarray(y_train), f_train)          # f_train^T onehot(y_train) without the one-hot
  w = np.linalg.solve(f_train.T @ f_train + ridge * np.eye(f_train.shape[1]), rhs)
  return np.argmax(f_test @ w, 1)


def ridge_probe_accuracy(f_train, y_train, f_test, y_test, ridge: float = 1e-2) -> float:
  """Accuracy of `ridge_probe_predict` on (f_test, y_test)."""
  k = int(max(np.max(y_train), np.max(y_test))) + 1
  return float(np.mean(ridge_probe_predict(f_train, y_train, f_test, k, ridge) == np.asarray(y_test)))


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, iters: int = 100, restarts: int = 5) -> np.ndarray:
  """Lloyd's k-means with k-means++ seeding (float64 NumPy), best of `restarts` by inertia. Returns labels [n]."""
  x = np.asarray(x, np.float64)
  rng = np.random.default_rng(seed)
  best, best_inertia = None, np.inf
  for _ in range(restarts):
    centers = [x[rng.integers(len(x))]]
    for _ in range(1, k):
      d2 = np.min(((x[:, None, :] - np.asarray(centers)[None]) ** 2).sum(-1), axis=1)
      centers.append(x[rng.choice(len(x), p=d2 / d2.sum())] if d2.sum() > 0 else x[rng.integers(len(x))])
    c = np.asarray(centers)
    for _ in range(iters):
      lab = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
      new = np.asarray([x[lab == j].mean(0) if np.any(lab == j) else c[j] for j in range(k)])
      if np.allclose(new, c):
        break
      c = new
    inertia = float(((x - c[lab]) ** 2).sum())
    if inertia < best_inertia:
      best, best_inertia = lab, inertia
  return best


def cluster_accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
  """Clustering accuracy under the best one-to-one matching of clusters to classes (Hungarian algorithm)."""
  from scipy.optimize import linear_sum_assignment
  pred, labels = np.asarray(pred), np.asarray(labels)
  k = int(max(pred.max(), labels.max())) + 1
  counts = np.zeros((k, k))
  np.add.at(counts, (pred, labels), 1)
  rows, cols = linear_sum_assignment(-counts)
  return float(counts[rows, cols].sum() / len(labels))


def spearman(a, b) -> float:
  """Spearman rank correlation (no ties expected); NaN when either input is constant."""
  ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
  if np.all(ra == ra[0]) or np.all(rb == rb[0]) or np.ptp(np.asarray(a, float)) == 0 or np.ptp(np.asarray(b, float)) == 0:
    return float("nan")
  return float(np.corrcoef(ra, rb)[0, 1])


def mean_ci(values) -> tuple[float, float, float]:
  """Mean over seeds and its 95% Student-t interval (low, high). One value: an interval of zero width is not
  claimed, the bounds are NaN (claims on them then fail)."""
  v = np.asarray(values, np.float64)
  m = float(v.mean())
  if len(v) < 2:
    return m, float("nan"), float("nan")
  dof = len(v) - 1
  t = _T975.get(dof) or _T975[max(k for k in _T975 if k <= dof)]
  half = t * float(v.std(ddof=1)) / math.sqrt(len(v))
  return m, m - half, m + half
