"""Co-DETR [172] auxiliary-head one-to-many assignment (ATSS): exact agreement with a float64 loop transcription of
ATSS Algorithm 1 (arXiv:1912.02424) on random small scenes, under jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.nn.detection_assign import atss_assign, box_iou, positive_query_boxes


def _iou_np(a, b):
  x1, y1 = max(a[0], b[0]), max(a[1], b[1])
  x2, y2 = min(a[2], b[2]), min(a[3], b[3])
  inter = max(x2 - x1, 0) * max(y2 - y1, 0)
  union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
  return inter / max(union, 1e-6)


def _atss_np(anchors, gts, levels, k):
  """ATSS Algorithm 1, one box and one level at a time."""
  best = np.full(len(anchors), -np.inf)
  out = np.full(len(anchors), -1)
  centres = (anchors[:, :2] + anchors[:, 2:]) / 2
  for g, box in enumerate(gts):
    c = (box[:2] + box[2:]) / 2
    cand, start = [], 0
    for n in levels:
      d = [np.hypot(*(centres[i] - c)) for i in range(start, start + n)]
      cand += [start + i for i in np.argsort(d, kind="stable")[:min(k, n)]]
      start += n
    ious = np.array([_iou_np(anchors[i], box) for i in cand])
    thr = ious.mean() + ious.std(ddof=1)
    for i, v in zip(cand, ious):
      x, y = centres[i]
      if v >= thr and min(x - box[0], y - box[1], box[2] - x, box[3] - y) > 0.01 and v > best[i]:
        best[i], out[i] = v, g
  return out


def _anchors(sizes, stride_scale):
  out = []
  for n, s in zip(sizes, stride_scale):
    xs = (np.arange(n) + 0.5) * (64 / n)
    cx, cy = np.meshgrid(xs, xs, indexing="ij")
    c = np.stack([cx.ravel(), cy.ravel()], 1)
    out.append(np.concatenate([c - s, c + s], 1))
  return np.concatenate(out)


def test_atss_matches_loop_transcription():
  rng = np.random.default_rng(0)
  anchors = _anchors((8, 4), (6.0, 12.0))                 # 64 + 16 anchors, two levels
  levels = (64, 16)
  f = jax.jit(atss_assign, static_argnames=("num_anchors_per_level", "topk"))
  many = 0
  for trial in range(12):
    xy = rng.uniform(0, 48, size=(3, 2))
    gts = np.concatenate([xy, xy + rng.uniform(6, 30, size=(3, 2))], 1)
    with jax.enable_x64(True):
      got, thr = f(jnp.asarray(anchors), jnp.asarray(gts), num_anchors_per_level=levels, topk=9)
    want = _atss_np(anchors, gts, levels, 9)
    np.testing.assert_array_equal(np.asarray(got), want)
    many += int(np.bincount(want[want >= 0], minlength=3).max() > 1)
  assert many >= 6    # one-to-many: in most scenes some box gets several positives
  # customized positive queries: the positives of the last scene, in anchor order, padded to Q slots
  pos = np.flatnonzero(want >= 0)
  for Q in (len(pos) + 3, max(len(pos) - 1, 1)):
    boxes, gidx, valid = jax.jit(positive_query_boxes, static_argnums=2)(jnp.asarray(anchors, jnp.float32),
                                                                          jnp.asarray(want), Q)
    k = min(Q, len(pos))
    np.testing.assert_array_equal(np.asarray(valid), np.arange(Q) < k)
    np.testing.assert_allclose(np.asarray(boxes)[:k], anchors[pos[:k]], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(gidx)[:k], want[pos[:k]])
    assert np.all(np.asarray(gidx)[k:] == -1) and np.all(np.asarray(boxes)[k:] == 0)
  np.testing.assert_allclose(np.asarray(box_iou(jnp.asarray(anchors[:5]), jnp.asarray(gts))),
                             [[_iou_np(a, b) for b in gts] for a in anchors[:5]], rtol=1e-6)


def test_bad_inputs():
  a = jnp.zeros((4, 4))
  with pytest.raises(ValueError, match="num_anchors_per_level"):
    atss_assign(a, jnp.ones((1, 4)), (3,))
  with pytest.raises(ValueError, match="gt_boxes"):
    atss_assign(a, jnp.ones((0, 4)), (4,))
  with pytest.raises(ValueError, match="boxes_a"):
    box_iou(jnp.ones((2, 3)), jnp.ones((1, 4)))
  with pytest.raises(TypeError, match="anchors"):
    atss_assign(jnp.zeros((4, 4), jnp.int32), jnp.ones((1, 4)), (4,))
