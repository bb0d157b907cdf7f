"""Modular arithmetic tables, the grokking benchmark.

Used by [185] Prieto et al., "Grokking at the Edge of Numerical Stability", ICLR 2025, arXiv:2501.04697 (Sec. 2):
all p^2 ordered pairs (a, b), a, b in [0, p), label (a op b) mod p, a random train/test split, and either one-hot
inputs concat(one_hot(a, p), one_hot(b, p)) of width 2p (their MLP) or token pairs (a, b) (their transformer).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


class SplitDataset(NamedTuple):
  """A train/test split: x_* inputs, y_* integer labels.

  The grokking data of Prieto et al., "Grokking at the Edge of Numerical Stability", ICLR 2025, arXiv:2501.04697,
  Sec. 2.

  x_train [N_train, 2p] (one-hot, `dtype`) or [N_train, 2] int32 (tokens); y_train [N_train] int32; x_test, y_test
  likewise with N_test = p^2 - N_train rows.
  """
  x_train: jax.Array
  y_train: jax.Array
  x_test: jax.Array
  y_test: jax.Array


def modular_arithmetic(key: jax.Array, p: int = 113, *, operation: Literal["add", "sub", "mul"] = "add",
                       train_fraction: float = 0.4, encoding: Literal["one_hot", "tokens"] = "one_hot",
                       rounding: Literal["round", "floor"] = "round", dtype=jnp.float32) -> SplitDataset:
  """All p^2 pairs (a, b) with label (a op b) mod p, randomly split (Prieto et al. 2025, Sec. 2 / official code).

  Args:
    key: PRNG key for the split.
    p: the modulus (>= 2).
    operation: 'add', 'sub' or 'mul'.
    train_fraction: share of the p^2 pairs in the training set, in (0, 1).
    encoding: 'one_hot' -> x of shape [N, 2p] (`dtype`); 'tokens' -> x of shape [N, 2] int32 (a, b).
    rounding: how train_fraction * p^2 becomes a count: 'round' (nearest) or 'floor' (the official code's
      `int(train_fraction * total)` before torch's `random_split`: 5107 training pairs for p = 113, 0.4).
    dtype: dtype of one-hot inputs.

  Returns:
    SplitDataset with round(train_fraction * p^2) (or floor) training pairs; labels int32 in [0, p).
  """
  p = validation.check_int(p, "p", 2, value_error=True)
  validation.check_in_interval(train_fraction, "train_fraction", 0.0, 1.0, closed_low=False, closed_high=False)
  if operation not in ("add", "sub", "mul"):
    raise ValueError(f"operation must be 'add', 'sub' or 'mul', got {operation=}")
  if encoding not in ("one_hot", "tokens"):
    raise ValueError(f"encoding must be 'one_hot' or 'tokens', got {encoding=}")
  if rounding not in ("round", "floor"):
    raise ValueError(f"rounding must be 'round' or 'floor', got {rounding=}")
  a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
  a, b = a.reshape(-1), b.reshape(-1)
  y = {"add": a + b, "sub": a - b, "mul": a * b}[operation] % p
  perm = np.asarray(jax.random.permutation(key, p * p))
  n_train = int(round(train_fraction * p * p)) if rounding == "round" else int(train_fraction * p * p)
  if not 0 < n_train < p * p:
    raise ValueError(f"train_fraction leaves an empty split: {train_fraction=}, {p=}")
  if encoding == "one_hot":
    x = np.zeros((p * p, 2 * p), np.float32)
    x[np.arange(p * p), a] = 1.0
    x[np.arange(p * p), p + b] = 1.0
  else:
    x = np.stack([a, b], -1).astype(np.int32)
  y = y.astype(np.int32)
  tr, te = perm[:n_train], perm[n_train:]
  # Split on the host, then one transfer per array (a device gather would compile per (p, n_train)).
  x_dtype = dtype if encoding == "one_hot" else jnp.int32
  return SplitDataset(jnp.asarray(x[tr], x_dtype), jnp.asarray(y[tr]), jnp.asarray(x[te], x_dtype), jnp.asarray(y[te]))
