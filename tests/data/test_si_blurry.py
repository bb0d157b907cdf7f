"""Si-Blurry [26]: the stream's class and boundary statistics as the scenario specifies, and MVP's seen-class logit
mask (-inf logits, zero probability and exactly zero gradient for unseen classes)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import losses
from jaxlib_methods.data.si_blurry import SiBlurryStream, seen_class_logit_mask, si_blurry_stream


def test_stream_statistics():
  K, T, n, m = 50, 5, 40, 10
  labels = np.repeat(np.arange(K), 30)                       # 30 samples per class
  per_task, full = [], 0
  for seed in range(8):
    s = si_blurry_stream(labels, num_classes=K, num_tasks=T, n=n, m=m, seed=seed)
    assert isinstance(s, SiBlurryStream) and len(s.tasks) == T
    allidx = np.concatenate(s.tasks)
    assert len(allidx) == len(set(allidx.tolist())) == len(labels)          # a partition: every sample once
    d = np.concatenate(s.disjoint_classes)
    b = np.concatenate(s.blurry_classes)
    assert len(d) == K * n // 100 // T * T == 20 and len(b) == 30 and not set(d) & set(b)
    for i, task in enumerate(s.tasks):
      task_classes = set(labels[task].tolist())
      for j in range(T):                                     # a disjoint class lives in its own task only
        if j != i:
          assert not task_classes & set(s.disjoint_classes[j].tolist())
      assert set(s.disjoint_classes[i].tolist()) <= task_classes
      home = np.isin(labels[task], s.blurry_classes[i])
      stray = task[~home & np.isin(labels[task], b)]         # blurry samples away from home were pooled
      assert set(stray.tolist()) <= set(s.blurred.tolist())
    blurry_samples = int(np.isin(labels, b).sum())
    assert 0 < len(s.blurred) <= blurry_samples * m // 100    # M% pooled (less when a task has too few)
    full += len(s.blurred) == blurry_samples * m // 100
    per_task.append([len(c) for c in s.disjoint_classes])
  assert full >= 1
  per_task = np.array(per_task)
  assert len({tuple(r) for r in per_task}) > 1 and per_task.std() > 0   # stochastic, uneven task sizes
  assert np.all(per_task.sum(1) == 20)
  # m = 0: no blurry sample leaves its home task; n = 100: every class is disjoint
  s = si_blurry_stream(labels, num_classes=K, num_tasks=T, n=0, m=0, seed=1)
  assert len(s.blurred) == 0
  for i, task in enumerate(s.tasks):
    assert set(labels[task].tolist()) == set(s.blurry_classes[i].tolist())
  s = si_blurry_stream(labels, num_classes=K, num_tasks=T, n=100, m=50, seed=1)
  assert sum(len(c) for c in s.disjoint_classes) == K and len(s.blurred) == 0


def test_seen_class_mask_is_exact():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(4, 6)).astype(np.float32)
  seen = np.array([True, False, True, True, False, False])
  y = jnp.array([0, 2, 3, 0])
  masked = np.asarray(seen_class_logit_mask(jnp.asarray(z), jnp.asarray(seen)))
  assert np.all(masked[:, ~seen] == -np.inf) and np.array_equal(masked[:, seen], z[:, seen])
  def loss(z):
    return losses.softmax_cross_entropy_with_integer_labels(seen_class_logit_mask(z, jnp.asarray(seen)), y).sum()
  val, g = jax.jit(jax.value_and_grad(loss))(jnp.asarray(z))
  assert np.all(np.asarray(g)[:, ~seen] == 0.0)                          # exactly zero, not small
  zs = z[:, seen].astype(np.float64)                                     # CE over the seen classes only
  lse = np.log(np.exp(zs).sum(1))
  want = (lse - zs[np.arange(4), np.searchsorted(np.flatnonzero(seen), np.asarray(y))]).sum()
  np.testing.assert_allclose(float(val), want, rtol=1e-5)
  with pytest.raises(ValueError, match="seen"):
    seen_class_logit_mask(jnp.asarray(z), jnp.ones(5, bool))
  with pytest.raises(ValueError, match="num_tasks"):
    si_blurry_stream(np.zeros(3, int), num_classes=2, num_tasks=0, n=10, m=10, seed=0)
