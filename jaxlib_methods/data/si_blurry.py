"""The Si-Blurry online class-incremental stream (stochastic blurry task boundaries) and MVP's seen-class logit mask.

Paper [26]: Jun-Yeong Moon, Keon-Hee Park, Jung Uk Kim, Gyeong-Moon Park, "Online Class Incremental Learning on
Stochastic Blurry Task Boundary via Mask and Visual Prompt Tuning", ICCV 2023, arXiv:2308.09303 (Sec. 3, the Si-Blurry
scenario: N% of the classes are disjoint (each seen in one task only) and the rest blurry; both groups are cut into
T tasks at random points, so the number of classes per task varies; M% of the blurry classes' samples are pooled,
shuffled and dealt back to the tasks in random amounts, so blurry classes leak across task boundaries). The split
follows the authors' `OnlineSampler(varing_NM=True)` (github.com/KHU-AGI/Si-Blurry, utils/online_sampler.py), drawn
with NumPy's generator instead of torch's (the same law, not the same draws). The logit mask is the authors'
`logit + self.mask` (methods/mvp.py): classes not yet exposed by the stream get -inf logits, so they take no
probability and no gradient; use it with `losses.softmax_cross_entropy_with_integer_labels(..., where=seen)`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods.validation import check_bool, check_floating


@dataclasses.dataclass(frozen=True)
class SiBlurryStream:
  """A Si-Blurry split of a labelled data set (Moon et al. 2023, arXiv:2308.09303, Sec. 3).

  Attributes:
    tasks: T int arrays, the sample indices of each task in stream order.
    disjoint_classes: T int arrays, the disjoint classes first (and only) seen in each task.
    blurry_classes: T int arrays, the blurry classes whose home is each task.
    blurred: int array, the blurry-class samples that were pooled and dealt back to random tasks.
  """
  tasks: tuple[np.ndarray, ...]
  disjoint_classes: tuple[np.ndarray, ...]
  blurry_classes: tuple[np.ndarray, ...]
  blurred: np.ndarray


def _random_cuts(rng: np.random.Generator, total: int, num_tasks: int) -> np.ndarray:
  """[0, sorted T - 1 draws from U{0, ..., total - 1}, total]: the authors' random task boundaries."""
  if total <= 0:
    return np.zeros(num_tasks + 1, np.int64)
  return np.concatenate([[0], np.sort(rng.integers(0, total, num_tasks - 1)), [total]])


def si_blurry_stream(labels: np.ndarray, *, num_classes: int, num_tasks: int, n: int, m: int,
                     seed: int) -> SiBlurryStream:
  """Split a labelled data set into a Si-Blurry stream of `num_tasks` tasks (Moon et al. 2023, arXiv:2308.09303,
  Sec. 3; the authors' `OnlineSampler` with `varing_NM=True`).

  Steps: shuffle the classes; the first floor(floor(K n / 100) / T) T are disjoint, the next
  floor((K - that) / T) T blurry; each group is cut into T consecutive (possibly empty) parts at T - 1 uniform random
  points. floor(B m / 100) of the B blurry-class samples (B counted over all tasks) are pooled: task i gives its first
  c_i blurry samples, (c_i) from T - 1 random cut points; the pool is shuffled and task i receives c_i of them back.
  Each task's samples are then shuffled.

  Args:
    labels: [S] integer class of each sample, in [0, num_classes).
    num_classes: K.
    num_tasks: T >= 1.
    n: percentage of disjoint classes, in [0, 100].
    m: percentage of blurry samples that leak across tasks, in [0, 100].
    seed: NumPy seed.

  Returns:
    A `SiBlurryStream`.
  """
  y = np.asarray(labels)
  if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
    raise TypeError(f"labels must be a 1-D integer array, got dtype {y.dtype} and shape {y.shape}")
  for name, v, lo, hi in (("num_classes", num_classes, 1, None), ("num_tasks", num_tasks, 1, None),
                          ("n", n, 0, 100), ("m", m, 0, 100)):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo or (hi is not None and v > hi):
      raise ValueError(f"{name} must be an int in [{lo}, {hi if hi is not None else 'inf'}], got {name}={v!r}")
  if y.size and (y.min() < 0 or y.max() >= num_classes):
    raise ValueError(f"labels must be in [0, {num_classes})")
  rng = np.random.default_rng(seed)
  T = num_tasks
  disjoint_num = (num_classes * n // 100) // T * T
  blurry_num = (num_classes - disjoint_num) // T * T
  order = rng.permutation(num_classes)
  dcut = _random_cuts(rng, disjoint_num, T)
  disjoint = tuple(order[dcut[i]:dcut[i + 1]] for i in range(T))
  bcut = _random_cuts(rng, blurry_num, T)
  blurry = tuple(order[disjoint_num + bcut[i]:disjoint_num + bcut[i + 1]] for i in range(T))
  home_d = [np.flatnonzero(np.isin(y, disjoint[i])) for i in range(T)]
  home_b = [np.flatnonzero(np.isin(y, blurry[i])) for i in range(T)]
  num_blurred = sum(len(b) for b in home_b) * m // 100
  pooled, keep = [], list(home_b)
  if num_blurred > 0:
    cuts = _random_cuts(rng, num_blurred, T)
    sizes = np.diff(cuts)
    for i in range(T):
      pooled.append(home_b[i][:sizes[i]])
      keep[i] = home_b[i][sizes[i]:]
    pool = rng.permutation(np.concatenate(pooled)) if pooled else np.zeros(0, np.int64)
    start = 0
    for i in range(T):
      keep[i] = np.concatenate([keep[i], pool[start:start + sizes[i]]])
      start += sizes[i]
  tasks = tuple(rng.permutation(np.concatenate([home_d[i], keep[i]]).astype(np.int64)) for i in range(T))
  blurred = np.concatenate(pooled).astype(np.int64) if pooled else np.zeros(0, np.int64)
  return SiBlurryStream(tasks, disjoint, blurry, blurred)


def seen_class_logit_mask(logits: jax.Array, seen: jax.Array) -> jax.Array:
  """MVP's exposed-class logit mask (Moon et al. 2023, arXiv:2308.09303; the authors' `logit + self.mask`): logits of
  classes not seen so far in the stream become -inf, the others are unchanged.

  A softmax over the result gives unseen classes probability exactly 0 and their logits gradient exactly 0.

  Args:
    logits: [..., K] class logits.
    seen: [K] or [..., K] bool, True for classes exposed so far (broadcast against `logits`).

  Returns:
    [..., K] masked logits, `logits`'s dtype.
  """
  z = check_floating(logits, "logits")
  s = check_bool(seen, "seen")
  if s.shape[-1:] != z.shape[-1:]:
    raise ValueError(f"seen must end with the class axis K={z.shape[-1]}, got seen.shape={s.shape}")
  return jnp.where(s, z, jnp.asarray(-jnp.inf, z.dtype))


__all__ = ["SiBlurryStream", "seen_class_logit_mask", "si_blurry_stream"]
