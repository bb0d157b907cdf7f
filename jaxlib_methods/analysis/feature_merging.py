"""Iterative feature merging (IFM) and the network feature complexity [23].

Yiting Chen, Zhanpeng Zhou, Junchi Yan, "Going Beyond Neural Network Feature Similarity: The Network Feature
Complexity and Its Interpretation Using Category Theory", ICLR 2024, arXiv:2310.06756 (Sec. 4, Iterative Feature
Merging): two neurons of a layer are functionally equivalent when one is a positive rescaling of the other (for
ReLU, relu(c z) = c relu(z), c > 0); IFM repeatedly merges the most similar pair of a layer (distance of the
normalised incoming weights [w_i; b_i] / ||[w_i; b_i]|| below a threshold beta), folding the removed neuron's
outgoing weights, rescaled by c, into the kept one, and the feature complexity of a layer is the number of neurons
left. The widths are data-dependent, so this runs on the host (NumPy), not under jit.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _check_layers(layers):
  if not isinstance(layers, (list, tuple)) or len(layers) < 2:
    raise TypeError(f"layers must be a list of >= 2 (w [in, out], b [out]) pairs of a ReLU MLP, got {type(layers)}")
  out = []
  for i, lay in enumerate(layers):
    if not isinstance(lay, (list, tuple)) or len(lay) != 2:
      raise TypeError(f"layers[{i}] must be a (w, b) pair, got {type(lay)}")
    w, b = np.asarray(lay[0]), np.asarray(lay[1])
    if not (np.issubdtype(w.dtype, np.floating) and np.issubdtype(b.dtype, np.floating)):
      raise TypeError(f"layers[{i}] must hold float arrays, got w.dtype={w.dtype}, b.dtype={b.dtype}")
    if w.ndim != 2 or b.shape != (w.shape[1],):
      raise ValueError(f"layers[{i}] must be w [in, out] and b [out], got w.shape={w.shape}, b.shape={b.shape}")
    if out and out[-1][0].shape[1] != w.shape[0]:
      raise ValueError(f"layers[{i}].w has {w.shape[0]} inputs but layer {i - 1} has {out[-1][0].shape[1]} outputs")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
      raise ValueError(f"layers[{i}] must be finite")
    out.append((w.copy(), b.copy()))
  return out


def iterative_feature_merging(layers: Sequence, beta: float):
  """Merge functionally equivalent neurons of every hidden layer of a ReLU MLP (IFM).

  Chen, Zhou & Yan, ICLR 2024, arXiv:2310.06756, Sec. 4 (Algorithm 1, our reading): per hidden layer, while the
  closest pair (i, j) of normalised incoming vectors u = [w; b] / ||[w; b]|| is within `beta`, neuron j is removed
  and its outgoing weights, times c = ||[w_j; b_j]|| / ||[w_i; b_i]||, are added to neuron i's. For exact positive
  rescalings (u_i = u_j) the network's function is unchanged, since relu(c z) = c relu(z).

  Args:
    layers: list of L >= 2 (w [d_in, d_out], b [d_out]) float pairs; the network is
      x -> relu(x w_1 + b_1) -> ... -> x w_L + b_L (the last layer linear).
    beta: float >= 0, the merging threshold on the distance of normalised incoming vectors.

  Returns:
    (merged layers (a new list of (w, b) NumPy pairs), widths: the list of the L - 1 hidden widths after merging).
  """
  if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating)) or not np.isfinite(beta) or beta < 0:
    raise ValueError(f"beta must be a finite float >= 0, got {beta=}")
  net = _check_layers(layers)
  for l in range(len(net) - 1):
    w, b = net[l]
    w_next, b_next = net[l + 1]
    while w.shape[1] > 1:
      full = np.concatenate([w, b[None]], axis=0)                  # [d_in + 1, d_out]
      norm = np.linalg.norm(full, axis=0)
      alive = norm > 0
      if not np.all(alive):                                        # dead neurons (zero in-weights) carry nothing
        keep = np.flatnonzero(alive) if alive.any() else np.array([0])
        w, b, w_next = w[:, keep], b[keep], w_next[keep]
        continue
      u = full / norm
      d = np.linalg.norm(u[:, :, None] - u[:, None, :], axis=0)
      np.fill_diagonal(d, np.inf)
      i, j = np.unravel_index(np.argmin(d), d.shape)
      if d[i, j] > beta:
        break
      i, j = min(i, j), max(i, j)
      w_next = w_next.copy()
      w_next[i] += norm[j] / norm[i] * w_next[j]
      keep = np.delete(np.arange(w.shape[1]), j)
      w, b, w_next = w[:, keep], b[keep], w_next[keep]
    net[l] = (w, b)
    net[l + 1] = (w_next, b_next)
  return net, [w.shape[1] for w, _ in net[:-1]]


def feature_complexity(layers: Sequence, beta: float):
  """The network feature complexity: the hidden widths left after `iterative_feature_merging` at threshold beta.

  Chen, Zhou & Yan, ICLR 2024, arXiv:2310.06756 (Sec. 3-4: the number of functionally inequivalent features of a
  layer, estimated by IFM).

  Args:
    layers: list of L >= 2 (w [d_in, d_out], b [d_out]) float pairs of a ReLU MLP (see `iterative_feature_merging`).
    beta: float >= 0 merging threshold.

  Returns:
    list of L - 1 ints, one per hidden layer.
  """
  return iterative_feature_merging(layers, beta)[1]
