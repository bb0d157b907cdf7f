"""MC-SMoE: merge the experts of a trained sparse MoE layer by routing-policy groups (after permutation alignment,
weighted by activation frequency), then compress the merged experts (low rank + sparse).

Paper [154]: Pingzhi Li, Zhenyu Zhang, Prateek Yadav, Yi-Lin Sung, Yu Cheng, Mohit Bansal, Tianlong Chen, "Merge,
Then Compress: Demystify Efficient SMoE with Hints from Its Routing Policy", ICLR 2024, arXiv:2310.01334
(Sec. 3.1-3.3):
  - permutation alignment (Sec. 3.1): an expert FFN(x) = W2 act(W1 x + b1) + b2 computes the same function after any
    permutation of its hidden units; before merging, each expert's hidden units are permuted to match the group's
    dominant expert by weight matching (Ainsworth et al., Git Re-Basin: the assignment maximising
    sum_i <W1_ref[:, i], W1[:, pi(i)]> + b1_ref[i] b1[pi(i)] + <W2_ref[i], W2[pi(i)]>, a linear assignment problem);
  - grouping (Sec. 3.2): the most frequently activated experts are the dominant ones (one per group); every other
    expert joins the dominant expert whose router logits are most similar (cosine similarity of the router-logit
    columns over a calibration set);
  - frequency-weighted merging (Eq. 3): E_merged = sum_(j in group) alpha_j E_j / sum_j alpha_j with alpha_j the
    activation frequency of expert j; the router is kept, and every expert of a group routes to the merged expert;
  - compression (Sec. 3.3): each merged weight W ~= U V + S, a rank-r factorisation plus a sparse residual.
    The paper learns U, V, S with iterative pruning during fine-tuning; `lowrank_sparse_compress` is the one-shot
    form (truncated SVD, then the largest-magnitude entries of the residual), stated as such.

Expert parameters use `momentum_smoe.smoe_layer`'s layout: w1 [E, d, h], b1 [E, h], w2 [E, h, d], b2 [E, d]. The
alignment calls scipy's linear-assignment solver, so `permute_align` and `merge_experts(..., align=True)` run
eagerly (an offline compression step, not a traced function).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

EXPERT_KEYS = ("w1", "b1", "w2", "b2")


def _concrete(x, name):
  if isinstance(x, jax.core.Tracer):
    raise TypeError(f"{name} must be a concrete array (MC-SMoE's merging runs eagerly, outside jax.jit)")
  return np.asarray(x)


def _check_experts(experts: dict, name: str = "experts") -> int:
  if not isinstance(experts, dict) or any(k not in experts for k in EXPERT_KEYS):
    got = sorted(experts) if isinstance(experts, dict) else type(experts)
    raise ValueError(f"{name} must be a dict with keys {EXPERT_KEYS}, got {got}")
  w1, b1, w2, b2 = (experts[k] for k in EXPERT_KEYS)
  if w1.ndim != 3 or b1.shape != (w1.shape[0], w1.shape[2]) or w2.shape != (w1.shape[0], w1.shape[2], w1.shape[1]) \
      or b2.shape != (w1.shape[0], w1.shape[1]):
    raise ValueError(f"{name} must be w1 [E, d, h], b1 [E, h], w2 [E, h, d], b2 [E, d], got "
                     f"{w1.shape}, {b1.shape}, {w2.shape}, {b2.shape}")
  return w1.shape[0]


def permute_align(reference: dict, expert: dict) -> np.ndarray:
  """The hidden-unit permutation pi that aligns `expert` to `reference` by weight matching (Li et al. 2024, MC-SMoE,
  arXiv:2310.01334, Sec. 3.1): pi maximises sum_i <W1_ref[:, i], W1[:, pi(i)]> + b1_ref[i] b1[pi(i)] +
  <W2_ref[i], W2[pi(i)]>, solved exactly as a linear assignment (scipy). Eager only.

  Args:
    reference: one expert, w1 [d, h], b1 [h], w2 [h, d] (b2 unused: it is not permuted).
    expert: the expert to align, same shapes.

  Returns:
    pi [h] int: `permute_expert(expert, pi)` is aligned with `reference`.
  """
  from scipy.optimize import linear_sum_assignment
  ref = {k: _concrete(reference[k], f"reference[{k!r}]").astype(np.float64) for k in ("w1", "b1", "w2")}
  exp = {k: _concrete(expert[k], f"expert[{k!r}]").astype(np.float64) for k in ("w1", "b1", "w2")}
  for src, name in ((ref, "reference"), (exp, "expert")):
    d, h = src["w1"].shape if src["w1"].ndim == 2 else (None, None)
    if src["w1"].ndim != 2 or src["b1"].shape != (h,) or src["w2"].shape != (h, d):
      raise ValueError(f"{name} must be one expert: w1 [d, h], b1 [h], w2 [h, d], got "
                       f"{src['w1'].shape}, {src['b1'].shape}, {src['w2'].shape}")
  if ref["w1"].shape != exp["w1"].shape:
    raise ValueError(f"reference and expert shapes differ: {ref['w1'].shape} vs {exp['w1'].shape}")
  sim = ref["w1"].T @ exp["w1"] + np.outer(ref["b1"], exp["b1"]) + ref["w2"] @ exp["w2"].T     # [h, h]
  rows, cols = linear_sum_assignment(sim, maximize=True)
  return cols[np.argsort(rows)].astype(np.int32)


def permute_expert(expert: dict, perm) -> dict:
  """The same expert with its hidden units reordered: w1[:, perm], b1[perm], w2[perm] (the function is unchanged;
  Li et al. 2024, arXiv:2310.01334, Sec. 3.1). Works on single experts (w1 [d, h]) and is jit-safe.

  Args:
    expert: w1 [d, h], b1 [h], w2 [h, d], b2 [d].
    perm: [h] a permutation of range(h).

  Returns:
    the permuted expert (same keys and shapes).
  """
  out = dict(expert)
  out["w1"] = jnp.take(expert["w1"], perm, axis=-1)
  out["b1"] = jnp.take(expert["b1"], perm, axis=-1)
  out["w2"] = jnp.take(expert["w2"], perm, axis=-2)
  return out


def expert_frequency(expert_index: jax.Array, num_experts: int) -> jax.Array:
  """Activation frequency alpha_j: the share of the T k routing assignments that go to expert j (Li et al. 2024,
  arXiv:2310.01334, Sec. 3.2). jit-safe.

  Args:
    expert_index: [T, k] the experts chosen for each token (from `top_k_routing`).
    num_experts: E.

  Returns:
    alpha [E], summing to 1.
  """
  if expert_index.ndim != 2:
    raise ValueError(f"expert_index must be [T, k], got shape {expert_index.shape}")
  counts = jnp.sum(jax.nn.one_hot(expert_index, num_experts, dtype=jnp.float32), axis=(0, 1))
  return counts / expert_index.size


def group_experts(router_logits, frequency, num_groups: int) -> np.ndarray:
  """MC-SMoE's routing-policy grouping (Li et al. 2024, arXiv:2310.01334, Sec. 3.2): the `num_groups` most
  frequently activated experts are dominant, one per group; every other expert joins the dominant expert whose
  router-logit column (over a calibration set) has the highest cosine similarity with its own. Eager.

  Args:
    router_logits: [T, E] router logits on calibration tokens.
    frequency: [E] activation frequencies (`expert_frequency`).
    num_groups: G, 1 <= G <= E.

  Returns:
    group [E] int in [0, G): group g's dominant expert is the g-th most frequent.
  """
  logits = _concrete(router_logits, "router_logits").astype(np.float64)
  freq = _concrete(frequency, "frequency").astype(np.float64)
  if logits.ndim != 2 or freq.shape != (logits.shape[1],):
    raise ValueError(f"need router_logits [T, E] and frequency [E], got {logits.shape} and {freq.shape}")
  E = logits.shape[1]
  if isinstance(num_groups, bool) or not isinstance(num_groups, int) or not 1 <= num_groups <= E:
    raise ValueError(f"num_groups must be an int in [1, {E}], got {num_groups=!r}")
  dominant = np.argsort(-freq, kind="stable")[:num_groups]
  cols = logits / (np.linalg.norm(logits, axis=0, keepdims=True) + 1e-12)
  sim = cols.T @ cols[:, dominant]                                         # [E, G]
  group = np.argmax(sim, axis=1)
  group[dominant] = np.arange(num_groups)
  return group.astype(np.int32)


def merge_experts(experts: dict, frequency, groups, *, align: bool = True, weighting: str = "frequency") -> dict:
  """Merge each group of experts into one (Li et al. 2024, MC-SMoE, arXiv:2310.01334, Eq. 3): every member is
  permutation-aligned to the group's dominant (most frequent) member (`align`), then the group's weights are averaged
  with weights alpha_j / sum_(group) alpha (`weighting="frequency"`, the paper) or uniformly (`"uniform"`, the
  ablation). The router is unchanged: each expert index is given its group's merged expert, so `smoe_layer` runs
  as before and the model stores G distinct experts. Eager.

  Args:
    experts: w1 [E, d, h], b1 [E, h], w2 [E, h, d], b2 [E, d] (other keys, e.g. the router, pass through).
    frequency: [E] activation frequencies.
    groups: [E] int group of each expert (`group_experts`).
    align: permutation-align members to the dominant expert before averaging.
    weighting: "frequency" or "uniform".

  Returns:
    the same dict with each expert replaced by its group's merged expert (same shapes).
  """
  E = _check_experts(experts)
  if weighting not in ("frequency", "uniform"):
    raise ValueError(f"weighting must be 'frequency' or 'uniform', got {weighting=!r}")
  freq = _concrete(frequency, "frequency").astype(np.float64)
  groups = _concrete(groups, "groups")
  if freq.shape != (E,) or groups.shape != (E,):
    raise ValueError(f"frequency and groups must be [E={E}], got {freq.shape} and {groups.shape}")
  if np.any(freq < 0):
    raise ValueError("frequency must be >= 0")
  ex = {k: _concrete(experts[k], f"experts[{k!r}]") for k in EXPERT_KEYS}
  dtype = ex["w1"].dtype
  out = {k: np.array(v, copy=True) for k, v in ex.items()}
  for g in np.unique(groups):
    members = np.flatnonzero(groups == g)
    dom = members[np.argmax(freq[members])]
    ref = {k: ex[k][dom] for k in EXPERT_KEYS}
    w = freq[members] if weighting == "frequency" else np.ones(len(members))
    w = w / w.sum() if w.sum() > 0 else np.full(len(members), 1.0 / len(members))
    merged = {k: np.zeros_like(ref[k], dtype=np.float64) for k in EXPERT_KEYS}
    for wj, j in zip(w, members):
      e = {k: ex[k][j] for k in EXPERT_KEYS}
      if align and j != dom:
        pi = permute_align(ref, e)
        e = {"w1": e["w1"][:, pi], "b1": e["b1"][pi], "w2": e["w2"][pi], "b2": e["b2"]}
      for k in EXPERT_KEYS:
        merged[k] += wj * e[k]
    for k in EXPERT_KEYS:
      out[k][members] = merged[k].astype(dtype)
  result = dict(experts)
  result.update({k: jnp.asarray(v) for k, v in out.items()})
  return result


def lowrank_sparse_compress(w, rank: int, sparsity: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  """W ~= U V + S: the rank-r truncated SVD of W plus the largest-magnitude (1 - sparsity) share of the residual's
  entries (MC-SMoE's compression form, Li et al. 2024, arXiv:2310.01334, Sec. 3.3; one-shot, where the paper learns
  the factors with iterative pruning during fine-tuning). jit-safe (float32 SVD).

  Args:
    w: [m, n] a weight matrix.
    rank: r, 0 <= r <= min(m, n).
    sparsity: share of the residual's entries set to zero, in [0, 1].

  Returns:
    (U [m, r], V [r, n], S [m, n] with about (1 - sparsity) m n nonzeros).
  """
  if w.ndim != 2:
    raise ValueError(f"w must be [m, n], got shape {w.shape}")
  if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank <= min(w.shape):
    raise ValueError(f"rank must be an int in [0, {min(w.shape)}], got {rank=!r}")
  if not 0 <= sparsity <= 1:
    raise ValueError(f"sparsity must be in [0, 1], got {sparsity=}")
  u, s, vt = jnp.linalg.svd(w, full_matrices=False)
  U, V = u[:, :rank] * s[:rank], vt[:rank]
  resid = w - U @ V
  keep = int(round((1 - sparsity) * w.size))
  if keep == 0:
    return U, V, jnp.zeros_like(w)
  thresh = jnp.sort(jnp.abs(resid).ravel())[-keep]
  return U, V, jnp.where(jnp.abs(resid) >= thresh, resid, 0)


def merged_num_params(experts: dict, groups, *, rank: Optional[int] = None, sparsity: float = 0.0) -> int:
  """Stored expert parameters after merging into G groups (and, with `rank`, compressing w1 and w2 to
  U V + S): the count behind MC-SMoE's memory reduction (Li et al. 2024, arXiv:2310.01334, Tables 1-2).

  Args:
    experts: w1 [E, d, h], b1 [E, h], w2 [E, h, d], b2 [E, d].
    groups: [E] group of each expert.
    rank: r of the low-rank part (None: uncompressed).
    sparsity: the residual's sparsity (nonzeros counted as one parameter each; indices not counted).

  Returns:
    the parameter count of the G distinct experts.
  """
  _check_experts(experts)
  G = len(np.unique(np.asarray(groups)))
  d, h = experts["w1"].shape[1:]
  if rank is None:
    mats = 2 * d * h
  else:
    mats = 2 * (rank * (d + h) + int(round((1 - sparsity) * d * h)))
  return G * (mats + h + d)
