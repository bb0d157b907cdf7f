"""Co-DETR's one-to-many label assignment of its auxiliary heads: the ATSS assigner, vectorised for jit.

Paper [172]: Zhuofan Zong, Guanglu Song, Yu Liu, "DETRs with Collaborative Hybrid Assignments Training", ICCV 2023,
arXiv:2211.12860 (Sec. 3.2: parallel auxiliary heads trained with one-to-many assignments, ATSS and Faster R-CNN,
give each ground-truth box many positive locations of the encoder's feature maps; Sec. 3.3: the positive coordinates
of those heads become the customized positive queries of the decoder). The assignment is ATSS: Shifeng Zhang, Cheng
Chi, Yongqiang Yao, Zhen Lei, Stan Z. Li, "Bridging the Gap Between Anchor-based and Anchor-free Detection via
Adaptive Training Sample Selection", CVPR 2020, arXiv:1912.02424 (Algorithm 1), as in mmdetection's `ATSSAssigner`
(which Co-DETR's ATSS head uses, top-k 9): per ground truth g and per pyramid level, the k anchors whose centres are
closest to g's centre are candidates; g's IoU threshold is the mean plus the (unbiased, N - 1) standard deviation of
the candidates' IoUs; a candidate is positive when its IoU >= the threshold and its centre lies inside g (by more
than 0.01 on every side, as mmdetection); an anchor positive for several boxes goes to the one of highest IoU.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods.validation import check_floating


def box_iou(boxes_a: jax.Array, boxes_b: jax.Array) -> jax.Array:
  """Pairwise IoU of boxes in (x1, y1, x2, y2) format (ATSS, arXiv:1912.02424, Alg. 1 line 6).

  Args:
    boxes_a: [A, 4] boxes.
    boxes_b: [G, 4] boxes.

  Returns:
    [A, G] IoU in [0, 1] (union clamped at 1e-6, as mmdetection's `bbox_overlaps`).
  """
  boxes_a, boxes_b = check_floating(boxes_a, "boxes_a"), check_floating(boxes_b, "boxes_b")
  if boxes_a.ndim != 2 or boxes_a.shape[1] != 4 or boxes_b.ndim != 2 or boxes_b.shape[1] != 4:
    raise ValueError(f"boxes_a and boxes_b must be [A, 4] and [G, 4], got {boxes_a.shape} and {boxes_b.shape}")
  a, b = boxes_a[:, None, :], boxes_b[None, :, :]
  wh = jnp.clip(jnp.minimum(a[..., 2:], b[..., 2:]) - jnp.maximum(a[..., :2], b[..., :2]), 0)
  inter = wh[..., 0] * wh[..., 1]
  area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])
  return inter / jnp.maximum(area(a) + area(b) - inter, 1e-6)


def atss_assign(anchors: jax.Array, gt_boxes: jax.Array, num_anchors_per_level: Sequence[int], *,
                topk: int = 9) -> tuple[jax.Array, jax.Array]:
  """ATSS one-to-many assignment of anchors to ground-truth boxes (Co-DETR auxiliary head, Zong et al. 2023,
  arXiv:2211.12860, Sec. 3.2; ATSS, Zhang et al. 2020, arXiv:1912.02424, Algorithm 1).

  Args:
    anchors: [A, 4] anchor boxes (x1, y1, x2, y2), concatenated level after level.
    gt_boxes: [G, 4] ground-truth boxes (x1, y1, x2, y2), G >= 1.
    num_anchors_per_level: anchors of each level in `anchors` order (static), summing to A.
    topk: candidates per level and box (the paper's k = 9); levels with fewer anchors give all of theirs.

  Returns:
    (assigned, iou_threshold): [A] int32 index of the assigned box, -1 for background (each box usually gets
    several anchors: one-to-many), and [G] the per-box IoU threshold mean + std.
  """
  anchors = check_floating(anchors, "anchors")
  gt = check_floating(gt_boxes, "gt_boxes")
  if anchors.ndim != 2 or anchors.shape[1] != 4 or gt.ndim != 2 or gt.shape[1] != 4 or gt.shape[0] < 1:
    raise ValueError(f"need anchors [A, 4] and gt_boxes [G, 4] with G >= 1, got {anchors.shape=}, {gt.shape=}")
  levels = tuple(int(n) for n in num_anchors_per_level)
  if any(n < 1 for n in levels) or sum(levels) != anchors.shape[0]:
    raise ValueError(f"num_anchors_per_level must be positive and sum to A={anchors.shape[0]}, got {levels}")
  if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
    raise ValueError(f"topk must be an int >= 1, got {topk=}")
  dtype = jnp.promote_types(jnp.result_type(anchors, gt), jnp.float32)
  anchors, gt = anchors.astype(dtype), gt.astype(dtype)
  iou = box_iou(anchors, gt)                                              # [A, G]
  ca = (anchors[:, :2] + anchors[:, 2:]) / 2
  cg = (gt[:, :2] + gt[:, 2:]) / 2
  dist = jnp.linalg.norm(ca[:, None, :] - cg[None, :, :], axis=-1)       # [A, G]
  cand, start = [], 0
  for n in levels:                                                        # per level: k nearest centres
    k = min(topk, n)
    _, idx = jax.lax.top_k(-dist[start:start + n].T, k)                  # [G, k]
    cand.append(idx + start)
    start += n
  cand = jnp.concatenate(cand, axis=1)                                    # [G, K]
  g = jnp.arange(gt.shape[0])[:, None]
  cand_iou = iou[cand, g]                                                 # [G, K]
  mean = cand_iou.mean(1)
  std = jnp.std(cand_iou, axis=1, ddof=1) if cand.shape[1] > 1 else jnp.zeros_like(mean)
  thr = mean + std
  c = ca[cand]                                                            # [G, K, 2]
  inside = jnp.min(jnp.stack([c[..., 0] - gt[:, None, 0], c[..., 1] - gt[:, None, 1],
                              gt[:, None, 2] - c[..., 0], gt[:, None, 3] - c[..., 1]], -1), -1) > 0.01
  pos = (cand_iou >= thr[:, None]) & inside                               # [G, K]
  score = jnp.full(iou.shape, -jnp.inf, dtype).at[cand, jnp.broadcast_to(g, cand.shape)].max(
      jnp.where(pos, cand_iou, -jnp.inf))                                 # [A, G]
  best = jnp.argmax(score, axis=1)
  assigned = jnp.where(jnp.isfinite(score.max(1)), best, -1).astype(jnp.int32)
  return assigned, thr


def positive_query_boxes(anchors: jax.Array, assigned: jax.Array, num_queries: int
                         ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The positive coordinates of an auxiliary head, gathered into a fixed number of extra decoder queries (Co-DETR's
  customized positive queries, Zong et al. 2023, arXiv:2211.12860, Sec. 3.3: each positive location of an auxiliary
  head becomes a query whose reference box is that location and whose target is its assigned ground truth).

  The first `num_queries` positives in anchor order are kept (static shapes for jit); missing slots are padding.

  Args:
    anchors: [A, 4] anchor (or predicted) boxes of the auxiliary head.
    assigned: [A] int assignment from `atss_assign` (-1: background).
    num_queries: Q, number of query slots (static), >= 1.

  Returns:
    (boxes, gt_index, valid): [Q, 4] reference boxes (0 in padding), [Q] int32 assigned box (-1 in padding) and [Q]
    bool validity.
  """
  anchors = check_floating(anchors, "anchors")
  if isinstance(num_queries, bool) or not isinstance(num_queries, int) or num_queries < 1:
    raise ValueError(f"num_queries must be an int >= 1, got {num_queries=!r}")
  if anchors.ndim != 2 or anchors.shape[1] != 4 or jnp.shape(assigned) != anchors.shape[:1]:
    raise ValueError(f"need anchors [A, 4] and assigned [A], got {anchors.shape} and {jnp.shape(assigned)}")
  assigned = jnp.asarray(assigned)
  if not jnp.issubdtype(assigned.dtype, jnp.integer):
    raise TypeError(f"assigned must be an integer array, got assigned.dtype={assigned.dtype}")
  pos = assigned >= 0
  (idx,) = jnp.nonzero(pos, size=num_queries, fill_value=-1)
  valid = idx >= 0
  safe = jnp.where(valid, idx, 0)
  boxes = jnp.where(valid[:, None], anchors[safe], 0.0)
  return boxes, jnp.where(valid, assigned[safe], -1).astype(jnp.int32), valid


__all__ = ["atss_assign", "box_iou", "positive_query_boxes"]
