"""The NNGP and neural tangent kernels of a deep hierarchical (tree-like) ReLU CNN, and kernel-ridge learning curves.

Paper [168]: Francesco Cagnetta, Alessandro Favero, Matthieu Wyart, "What Can Be Learnt With Wide Convolutional
Neural Networks?", ICML 2023, arXiv:2208.01003 (the hierarchical CNN of its Fig. 1, its kernel, and the
learning curves of kernel regression with it).

Architecture (the paper's Fig. 1): inputs x in R^d with d = s^L, L hidden layers, non-overlapping filters of size s
(stride s). Layer 1 sees the d / s input patches x_i in R^s; each node of layer l > 1 combines its s children of
layer l - 1; layer L has one node, read out linearly. With ReLU activations scaled by sqrt(2) (so a unit-variance
pre-activation gives a unit-variance activation) the infinite-width pre-activation kernels follow the tree:

    k^(1)_i(x, y) = <x_i, y_i> / s,                       Theta^(1)_i = k^(1)_i
    k^(l+1)_j = (1/s) sum_{i in ch(j)} kappa_1(k^(l)_i),   Theta^(l+1)_j = (1/s) sum_i [kappa_1(k^(l)_i)
                                                                            + kappa_0(k^(l)_i) Theta^(l)_i]
    NNGP K = kappa_1(k^(L)),                              NTK Theta = kappa_1(k^(L)) + kappa_0(k^(L)) Theta^(L)

with the arc-cosine maps (Cho & Saul 2009) of a pair with variances q_x, q_y and covariance k, t = angle:
kappa_1 = sqrt(q_x q_y) (sin t + (pi - t) cos t) / pi and kappa_0 = (pi - t) / pi. Without pooling, weight sharing
does not change these kernels (the tests compare with the empirical NTK of a finite CNN with shared filters).
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


def _depth(d: int, s: int) -> int:
  if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 2:
    raise ValueError(f"filter_size must be a Python int >= 2, got filter_size={s!r}")
  depth, m = 0, d
  while m > 1 and m % s == 0:
    m //= s
    depth += 1
  if m != 1:
    raise ValueError(f"the input dimension must be a power of filter_size={s} (d = s^L), got d={d}")
  return depth


def _arccos(k, qx, qy):
  norm = jnp.sqrt(qx * qy)
  c = jnp.clip(k / jnp.where(norm > 0, norm, 1), -1.0, 1.0)
  t = jnp.arccos(c)
  k0 = (jnp.pi - t) / jnp.pi
  k1 = norm * (jnp.sqrt(1 - c ** 2) + (jnp.pi - t) * c) / jnp.pi
  return k0, k1


def hierarchical_cnn_kernel(x1: Any, x2: Optional[Any] = None, *, filter_size: int,
                            kind: Literal["ntk", "nngp"] = "ntk") -> jax.Array:
  """The infinite-width NTK (or NNGP kernel) of a deep hierarchical ReLU CNN with non-overlapping filters of size s
  and depth L = log_s(d) (Cagnetta, Favero, Wyart, ICML 2023, arXiv:2208.01003, Fig. 1's architecture; recursion in the module
  docstring).

  Args:
    x1: [N1, d] float inputs, d = filter_size^L (the patches are consecutive blocks of filter_size coordinates).
    x2: [N2, d] float inputs (default x1).
    filter_size: s >= 2.
    kind: "ntk" (the neural tangent kernel) or "nngp" (the output's Gaussian-process kernel).

  Returns:
    [N1, N2] kernel matrix in the inputs' float dtype (at least float32).
  """
  x1 = validation.check_floating(x1, "x1")
  x2 = x1 if x2 is None else validation.check_floating(x2, "x2")
  if x1.ndim != 2 or x2.ndim != 2 or x1.shape[1] != x2.shape[1]:
    raise ValueError(f"x1 and x2 must be [N, d] with the same d, got x1.shape={x1.shape}, x2.shape={x2.shape}")
  if kind not in ("ntk", "nngp"):
    raise ValueError(f"kind must be 'ntk' or 'nngp', got {kind=}")
  s = filter_size
  depth = _depth(x1.shape[1], s)
  dt = jnp.promote_types(jnp.promote_types(x1.dtype, x2.dtype), jnp.float32)
  a = x1.astype(dt).reshape(x1.shape[0], -1, s)
  b = x2.astype(dt).reshape(x2.shape[0], -1, s)
  k = jnp.einsum("npi,mpi->nmp", a, b) / s                        # [N1, N2, d / s] layer-1 pre-activation kernel
  qx = jnp.sum(a * a, -1) / s                                     # [N1, d / s]
  qy = jnp.sum(b * b, -1) / s
  theta = k
  for _ in range(depth - 1):                                      # layers 2..L: each node pools its s children
    k0, k1 = _arccos(k, qx[:, None, :], qy[None, :, :])
    theta = (k1 + k0 * theta).reshape(k.shape[:2] + (-1, s)).mean(-1)
    k = k1.reshape(k.shape[:2] + (-1, s)).mean(-1)
    qx = qx.reshape(qx.shape[0], -1, s).mean(-1)                  # kappa_1(q, q) = q: the diagonal is pooled
    qy = qy.reshape(qy.shape[0], -1, s).mean(-1)
  k0, k1 = _arccos(k[..., 0], qx[:, None, 0], qy[None, :, 0])
  if kind == "nngp":
    return k1
  return k1 + k0 * theta[..., 0]


def hierarchical_cnn_init(key: jax.Array, d: int, *, filter_size: int, width: int) -> list:
  """Random parameters (NTK parametrisation, N(0, 1) entries) of the finite hierarchical CNN whose infinite-width
  kernels are `hierarchical_cnn_kernel` (Cagnetta, Favero, Wyart 2023, arXiv:2208.01003, Fig. 1): filters shared
  across positions, one [s, H] (layer 1) or [s, H, H] (layers 2..L) array per layer, and an [H] readout.

  Args:
    key: PRNG key.
    d: input dimension, a power of filter_size.
    filter_size: s >= 2.
    width: channels H >= 1.

  Returns:
    list of L + 1 float32 arrays.
  """
  depth = _depth(d, filter_size)
  if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
    raise ValueError(f"width must be a Python int >= 1, got {width=}")
  keys = jax.random.split(key, depth + 1)
  params = [jax.random.normal(keys[0], (filter_size, width))]
  params += [jax.random.normal(keys[i], (filter_size, width, width)) for i in range(1, depth)]
  return params + [jax.random.normal(keys[depth], (width,))]


def hierarchical_cnn_apply(params: Sequence[jax.Array], x: Any) -> jax.Array:
  """The finite hierarchical CNN: f(x) = <a, sqrt(2) relu(h^(L))> / sqrt(H), h^(1)_i = W_1^T x_i / sqrt(s),
  h^(l+1)_j = sum_{c < s} W_{l+1}[c]^T sqrt(2) relu(h^(l)_{s j + c}) / sqrt(s H) (Cagnetta, Favero, Wyart 2023,
  arXiv:2208.01003, Fig. 1, NTK parametrisation).

  Args:
    params: from `hierarchical_cnn_init`.
    x: [N, d] float inputs.

  Returns:
    [N] outputs.
  """
  x = validation.check_floating(x, "x")
  s, width = params[0].shape
  act = lambda h: jnp.sqrt(2.0) * jax.nn.relu(h)
  h = jnp.einsum("npi,ih->nph", x.reshape(x.shape[0], -1, s), params[0]) / np.sqrt(s)
  for w in params[1:-1]:
    z = act(h).reshape(h.shape[0], -1, s, width)
    h = jnp.einsum("npch,chk->npk", z, w) / np.sqrt(s * width)
  return act(h[:, 0]) @ params[-1] / np.sqrt(width)


def krr_learning_curve(k_train: Any, y_train: Any, k_test: Any, y_test: Any, ns: Sequence[int], *,
                       ridge: float = 0.0) -> np.ndarray:
  """Test mean squared error of kernel ridge regression on the first n training points, for each n in `ns`
  (host float64 NumPy; the learning curves of Cagnetta, Favero, Wyart 2023, arXiv:2208.01003):
  f_n(x) = k(x, X_n) (K_n + ridge n I)^{-1} y_n.

  Args:
    k_train: [P, P] kernel among the training points (P >= max(ns)).
    y_train: [P] or [P, R] targets (R target functions learnt with the same kernel solves).
    k_test: [T, P] kernel between test and training points.
    y_test: [T] or [T, R] test targets.
    ns: increasing training-set sizes, each in [1, P].
    ridge: ridge >= 0 (0: interpolation, solved by least squares).

  Returns:
    [len(ns)] (or [len(ns), R]) float64 test MSEs.
  """
  k_train, y_train, k_test, y_test = (np.asarray(a, np.float64) for a in (k_train, y_train, k_test, y_test))
  p = k_train.shape[0]
  if (k_train.shape != (p, p) or y_train.shape[:1] != (p,) or y_train.ndim > 2 or k_test.shape[1:] != (p,)
      or y_test.shape != k_test.shape[:1] + y_train.shape[1:]):
    raise ValueError(f"shapes must be k_train [P, P], y_train [P(, R)], k_test [T, P], y_test [T(, R)]; got "
                     f"{k_train.shape}, {y_train.shape}, {k_test.shape}, {y_test.shape}")
  ns = [int(n) for n in ns]
  if not ns or min(ns) < 1 or max(ns) > p:
    raise ValueError(f"ns must be training-set sizes in [1, {p}], got {ns=}")
  if not np.isfinite(ridge) or ridge < 0:
    raise ValueError(f"ridge must be finite and >= 0, got {ridge=}")
  out = []
  for n in ns:
    a = k_train[:n, :n] + ridge * n * np.eye(n)
    coef = np.linalg.lstsq(a, y_train[:n], rcond=None)[0] if ridge == 0 else np.linalg.solve(a, y_train[:n])
    out.append(np.mean((k_test[:, :n] @ coef - y_test) ** 2, axis=0))
  return np.asarray(out)
