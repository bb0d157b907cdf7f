"""Fisher-weighted model merging: diagonal Fisher estimates and the merge, as pytree operations.

Paper [141]: Michael Matena, Colin Raffel, "Merging Models with Fisher-Weighted Averaging", NeurIPS 2022,
arXiv:2111.09832.

Merging M models with the same architecture and initialisation is read as maximising the joint (Laplace-approximated)
posterior sum_i lambda_i log N(theta; theta_i, F_i^{-1}); its maximiser is

    theta* = (sum_i lambda_i F_i)^{-1} sum_i lambda_i F_i theta_i                  (full Fishers F_i)
    theta*_j = sum_i lambda_i F_{i,j} theta_{i,j} / sum_i lambda_i F_{i,j}        (diagonal Fishers, the paper's Eq. 4)

so equal Fishers give the weighted ("isotropic") average, and for linear-Gaussian models, where the Laplace
approximation is exact and F_i = X_i^T X_i / s^2, the full-Fisher merge of the per-dataset least-squares fits is the
least-squares fit on the pooled data. The diagonal Fisher of a model p_theta(y | x) is estimated on N inputs as

    F_hat = (1/N) sum_n E_{y ~ p_theta(y | x_n)} [ (grad_theta log p_theta(y | x_n))^2 ]

with the expectation over the model's own predictive distribution (not the labels): exactly, as the official code
does for classifiers, or by sampling labels (`num_samples` per input). Per-example gradients are taken with
`jax.vmap` of `jax.grad`, in `batch_size` chunks to bound memory.

The official merge (github.com/mmatena/model_merging, `merging.py`) floors each Fisher at `fisher_floor` = 1e-6 (by
default only the first, "target", model's) so that a coordinate where every Fisher is zero is well defined; here the
floor applies to every model unless `favor_target=True` (the official default), and Fishers may be normalised by
their global l2 norm first (`normalize_fishers`, also an official option).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Literal, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation

LIKELIHOODS = ("categorical", "gaussian")


def _check_tree_list(trees: Sequence[Any], name: str) -> list:
  if not isinstance(trees, (list, tuple)) or len(trees) == 0:
    raise ValueError(f"{name} must be a non-empty list of pytrees (one per model), got {type(trees).__name__}")
  ref = jax.tree.structure(trees[0])
  ref_leaves = jax.tree.leaves(trees[0])
  for i, t in enumerate(trees):
    if jax.tree.structure(t) != ref:
      raise ValueError(f"{name}[{i}] has tree structure {jax.tree.structure(t)}, but {name}[0] has {ref}")
    for path_leaf, a, b in zip(jax.tree_util.tree_leaves_with_path(t), jax.tree.leaves(t), ref_leaves):
      if np.shape(a) != np.shape(b):
        raise ValueError(f"{name}[{i}]{jax.tree_util.keystr(path_leaf[0])} has shape {np.shape(a)}, but "
                         f"{name}[0] has {np.shape(b)}")
  return list(trees)


def _check_weights(lambdas: Optional[Sequence[float]], n: int) -> np.ndarray:
  if lambdas is None:
    return np.full((n,), 1.0 / n)
  lam = np.asarray(lambdas, np.float64)
  if lam.shape != (n,):
    raise ValueError(f"lambdas must have one weight per model ({n}), got shape {lam.shape}")
  if not np.all(np.isfinite(lam)) or np.any(lam < 0) or lam.sum() <= 0:
    raise ValueError(f"lambdas must be finite, >= 0 and not all 0, got lambdas={lam.tolist()}")
  return lam


def fisher_merge(
    params_list: Sequence[Any],
    fishers: Optional[Sequence[Any]] = None,
    lambdas: Optional[Sequence[float]] = None,
    *,
    fisher_floor: float = 1e-6,
    favor_target: bool = False,
    normalize_fishers: bool = False,
) -> Any:
  """Merge models by their diagonal Fishers: theta*_j = sum_i l_i F_ij theta_ij / sum_i l_i F_ij (Eq. 4).

  Matena & Raffel, "Merging Models with Fisher-Weighted Averaging", NeurIPS 2022, arXiv:2111.09832, Eq. (4).
  With `fishers=None` (or equal Fishers) this is the isotropic merge sum_i l_i theta_i / sum_i l_i.

  Args:
    params_list: M pytrees of identical structure and shapes (the models to merge).
    fishers: M pytrees like the params (diagonal Fishers, e.g. from `diag_fisher`), or None (isotropic merge).
    lambdas: M non-negative merge weights (normalised internally); None = 1/M each.
    fisher_floor: each Fisher entry is raised to at least this (>= 0), so that a coordinate no model is sensitive
      to still gets a defined (averaged) value.
    favor_target: floor only the first model's Fisher (the official code's default; then the first model decides
      the coordinates every Fisher ignores).
    normalize_fishers: divide each model's weight by its Fisher's global l2 norm (an official-code option).

  Returns:
    The merged pytree, shaped and typed like `params_list[0]`.

  Examples:
    >>> import jax.numpy as jnp
    >>> a, b = {"w": jnp.array([0.0, 0.0])}, {"w": jnp.array([2.0, 2.0])}
    >>> fa, fb = {"w": jnp.array([1.0, 3.0])}, {"w": jnp.array([1.0, 1.0])}
    >>> fisher_merge([a, b], [fa, fb])["w"].tolist()
    [1.0, 0.5]
  """
  params_list = _check_tree_list(params_list, "params_list")
  n = len(params_list)
  lam = _check_weights(lambdas, n)
  validation.check_nonnegative(fisher_floor, "fisher_floor")
  for flag, name in ((favor_target, "favor_target"), (normalize_fishers, "normalize_fishers")):
    if not isinstance(flag, bool):
      raise TypeError(f"{name} must be a bool, got {name}={flag!r}")
  for i, p in enumerate(params_list):
    validation.check_float_tree(p, f"params_list[{i}]")
  if fishers is None:
    # Accumulated in at least float32 (as the Fisher-weighted branch), rounded once to the params' dtype.
    def average(*xs):
      dtype = validation.compute_dtype_for(xs[0].dtype)
      return sum(float(l) * x.astype(dtype) for l, x in zip(lam / lam.sum(), xs)).astype(xs[0].dtype)
    return jax.tree.map(average, *params_list)
  fishers = _check_tree_list(fishers, "fishers")
  if len(fishers) != n:
    raise ValueError(f"fishers must have one tree per model ({n}), got {len(fishers)}")
  if jax.tree.structure(fishers[0]) != jax.tree.structure(params_list[0]):
    raise ValueError(f"fishers must mirror the params' tree: {jax.tree.structure(fishers[0])} vs "
                     f"{jax.tree.structure(params_list[0])}")
  for fl, pl in zip(jax.tree.leaves(fishers[0]), jax.tree.leaves(params_list[0])):
    if np.shape(fl) != np.shape(pl):
      raise ValueError(f"each Fisher must have its parameter's shape, got {np.shape(fl)} for a {np.shape(pl)} leaf")
  weights = lam.copy()
  if normalize_fishers:
    norms = np.array([float(jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(f))))
                      for f in fishers])
    if np.any(norms == 0):
      raise ValueError("normalize_fishers=True needs every Fisher to be non-zero somewhere")
    weights = weights / norms

  def merge_leaf(*leaves):
    ps, fs = leaves[:n], leaves[n:]
    dtype = jnp.promote_types(ps[0].dtype, jnp.float32)
    num = jnp.zeros(ps[0].shape, dtype)
    den = jnp.zeros(ps[0].shape, dtype)
    for i, (p, f) in enumerate(zip(ps, fs)):
      f = f.astype(dtype)
      if fisher_floor and (not favor_target or i == 0):
        f = jnp.maximum(f, fisher_floor)
      w = weights[i] * f
      num = num + w * p.astype(dtype)
      den = den + w
    return (num / den).astype(ps[0].dtype)

  return jax.tree.map(merge_leaf, *params_list, *fishers)


def fisher_merge_full(thetas: Sequence[Any], fishers: Sequence[Any], lambdas: Optional[Sequence[float]] = None
                      ) -> jax.Array:
  """Merge flat parameter vectors with full Fisher matrices: (sum_i l_i F_i)^{-1} sum_i l_i F_i theta_i.

  The exact maximiser of sum_i l_i log N(theta; theta_i, F_i^{-1}) (Matena & Raffel 2022, arXiv:2111.09832,
  Sec. 2, before the diagonal approximation of Eq. 4); for small models and tests.

  Args:
    thetas: M arrays [P].
    fishers: M symmetric positive semi-definite arrays [P, P] whose weighted sum is invertible.
    lambdas: M non-negative weights (None: equal).

  Returns:
    The merged vector [P] (solved with `jnp.linalg.solve`).
  """
  if len(thetas) == 0 or len(thetas) != len(fishers):
    raise ValueError(f"need as many Fishers as parameter vectors (>= 1), got {len(thetas)} and {len(fishers)}")
  p = np.shape(thetas[0])
  if len(p) != 1:
    raise ValueError(f"thetas must be flat vectors [P], got shape {p}")
  for i, (t, f) in enumerate(zip(thetas, fishers)):
    if np.shape(t) != p or np.shape(f) != (p[0], p[0]):
      raise ValueError(f"thetas[{i}] must be [{p[0]}] and fishers[{i}] [{p[0]}, {p[0]}], got {np.shape(t)} and "
                       f"{np.shape(f)}")
  lam = _check_weights(lambdas, len(thetas))
  a = sum(float(l) * jnp.asarray(f) for l, f in zip(lam, fishers))
  b = sum(float(l) * jnp.asarray(f) @ jnp.asarray(t) for l, t, f in zip(lam, thetas, fishers))
  return jnp.linalg.solve(a, b)


def diag_fisher(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    inputs: jax.Array,
    key: Optional[jax.Array] = None,
    *,
    likelihood: Literal["categorical", "gaussian"] = "categorical",
    num_samples: int = 1,
    exact: bool = False,
    noise_std: float = 1.0,
    batch_size: Optional[int] = None,
) -> Any:
  """Diagonal empirical Fisher under the model's own predictive distribution (Matena & Raffel 2022, Sec. 2).

  F_hat = (1/N) sum_n E_{y ~ p_theta(. | x_n)} [(grad_theta log p_theta(y | x_n))^2], per parameter entry. The
  expectation is sampled (`num_samples` labels per input, drawn with `key`) or exact (`exact=True`: a sum over the
  K classes weighted by their probabilities for "categorical", as the official code does; (grad mu)^2 / s^2 for
  "gaussian").

  Args:
    apply_fn: `apply_fn(params, x)` for a batch x [B, ...] returns logits [B, K] ("categorical") or means [B] or
      [B, D] ("gaussian", y ~ N(mean, noise_std^2 I)). Called on one example at a time (B = 1) under `jax.vmap`.
    params: the model's parameters (a pytree of floating arrays).
    inputs: [N, ...] the inputs the Fisher averages over (N >= 1).
    key: PRNG key for the sampled labels (required unless `exact`).
    likelihood: "categorical" or "gaussian".
    num_samples: labels drawn per input (>= 1) when sampling.
    exact: take the expectation over y exactly instead of sampling.
    noise_std: s > 0 of the Gaussian likelihood.
    batch_size: inputs per vmapped chunk (None: all at once).

  Returns:
    A pytree like `params` (float32 or wider) of non-negative Fisher diagonals.
  """
  if likelihood not in LIKELIHOODS:
    raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood=!r}")
  if not isinstance(exact, bool):
    raise TypeError(f"exact must be a bool, got {exact=!r}")
  if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
    raise ValueError(f"num_samples must be an int >= 1, got {num_samples=!r}")
  validation.check_positive(noise_std, "noise_std")
  if not callable(apply_fn):
    raise TypeError(f"apply_fn must be callable as apply_fn(params, x), got {apply_fn!r}")
  validation.check_float_tree(params, "params")
  inputs = jnp.asarray(inputs)
  if inputs.ndim < 1 or inputs.shape[0] < 1:
    raise ValueError(f"inputs must be [N, ...] with N >= 1, got shape {inputs.shape}")
  n = inputs.shape[0]
  if batch_size is None:
    batch_size = n
  if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
    raise ValueError(f"batch_size must be an int >= 1 or None, got {batch_size=!r}")
  if not exact and key is None:
    raise ValueError("diag_fisher samples labels from the model: pass a PRNG key (or exact=True)")
  if key is None:
    key = jax.random.key(0)  # unused by the exact expectation
  total = None
  for start in range(0, n, batch_size):
    chunk = inputs[start:start + batch_size]
    keys = jax.random.split(jax.random.fold_in(key, start), chunk.shape[0])
    part = _fisher_sum(apply_fn, params, chunk, keys, likelihood, num_samples, exact, float(noise_std))
    total = part if total is None else jax.tree.map(jnp.add, total, part)
  return jax.tree.map(lambda t: t / n, total)


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6, 7))
def _fisher_sum(apply_fn, params, xs, keys, likelihood, num_samples, exact, noise_std):
  """sum over the chunk's examples of the per-example (expected) squared score."""
  dtype_of = lambda p: jnp.promote_types(p.dtype, jnp.float32)

  def outputs(p, x):
    return apply_fn(p, x[None])[0]

  def wide(out):
    return out.astype(jnp.promote_types(out.dtype, jnp.float32))

  def log_lik(p, x, y):
    out = wide(outputs(p, x))
    if likelihood == "categorical":
      return jax.nn.log_softmax(out)[y]
    return -0.5 * jnp.sum(jnp.square((y - out) / noise_std))

  def one(x, k):
    if exact:
      if likelihood == "categorical":
        logits = wide(outputs(params, x))
        probs = jax.nn.softmax(logits)
        grads = jax.vmap(lambda y: jax.grad(log_lik)(params, x, y))(jnp.arange(logits.shape[-1]))
        return jax.tree.map(lambda g: jnp.tensordot(probs, jnp.square(g.astype(dtype_of(g))), axes=1), grads)
      # Gaussian: E_y[(grad log p)^2] = sum_d (d mu_d / d theta)^2 / s^2.
      jac = jax.jacrev(lambda p: jnp.atleast_1d(wide(outputs(p, x))))(params)
      return jax.tree.map(lambda j: jnp.sum(jnp.square(j.astype(dtype_of(j))), axis=0) / noise_std ** 2, jac)
    out = wide(outputs(params, x))
    if likelihood == "categorical":
      ys = jax.random.categorical(k, out, shape=(num_samples,))
    else:
      ys = out + noise_std * jax.random.normal(k, (num_samples,) + out.shape, out.dtype)
    grads = jax.vmap(lambda y: jax.grad(log_lik)(params, x, y))(ys)
    return jax.tree.map(lambda g: jnp.mean(jnp.square(g.astype(dtype_of(g))), axis=0), grads)

  per_example = jax.vmap(one)(xs, keys)
  return jax.tree.map(lambda f: jnp.sum(f, axis=0), per_example)


__all__ = ["LIKELIHOODS", "diag_fisher", "fisher_merge", "fisher_merge_full"]
