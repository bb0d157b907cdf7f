"""[69] continual-evaluation metrics on hand-made accuracy curves (values by hand) and against a NumPy transcription
of the authors' windowed loops (max over i < j in a deque of the last w values)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.analysis import min_acc, wc_acc, windowed_forgetting, windowed_plasticity


def _np_window(a, w, sign):
  best = 0.0
  for n in range(len(a)):
    win = a[max(0, n - w + 1):n + 1]
    for i in range(len(win)):
      for j in range(i + 1, len(win)):
        best = max(best, sign * (win[i] - win[j]))
  return best


def test_continual_metrics_hand_made_curves():
  # Two tasks over 10 iterations; task 0 trained on iterations 0..4, task 1 on 5..9. Task 0 dips to 0.4 right after
  # the switch (the stability gap) and recovers to 0.92.
  a0 = [0.2, 0.5, 0.8, 0.9, 0.95, 0.4, 0.6, 0.8, 0.9, 0.92]
  a1 = [0.1, 0.1, 0.1, 0.1, 0.1, 0.3, 0.7, 0.85, 0.9, 0.93]
  acc = jnp.asarray(np.stack([a0, a1], 1), jnp.float32)
  end = jnp.asarray([4, 9])
  f_min, f_wc = jax.jit(min_acc), jax.jit(wc_acc)                      # step traced: one compilation each
  step = lambda t: jnp.asarray(t, jnp.int32)
  assert float(f_min(acc, end, step=step(9))) == pytest.approx(0.4)
  assert float(f_wc(acc, end, step=step(9))) == pytest.approx(0.5 * 0.93 + 0.5 * 0.4)
  assert float(f_wc(acc, end, step=step(6))) == pytest.approx(0.5 * 0.7 + 0.5 * 0.4)
  assert float(f_wc(acc, end, step=step(3))) == pytest.approx(0.9)     # first task: its own accuracy
  assert np.isnan(float(f_min(acc, end, step=step(3))))                 # no finished task yet
  # Only the evaluations after the task ended count: at step 5 the minimum is the dip itself.
  assert float(f_min(acc, end, step=step(5))) == pytest.approx(0.4)
  wf = jax.jit(windowed_forgetting, static_argnums=1)
  wp = jax.jit(windowed_plasticity, static_argnums=1)
  np.testing.assert_allclose(wf(acc, 2), [0.55, 0.0], atol=1e-6)       # 0.95 -> 0.4 in consecutive evaluations
  np.testing.assert_allclose(wp(acc, 2), [0.3, 0.4], atol=1e-6)
  # Random curves (same shape: no recompilation) vs the authors' loops.
  r = np.random.default_rng(0).uniform(size=(10, 2)).astype(np.float32)
  for w in (2, 3):
    np.testing.assert_allclose(wf(jnp.asarray(r), w), [_np_window(r[:, k], w, 1) for k in range(2)], atol=1e-6)
    np.testing.assert_allclose(wp(jnp.asarray(r), w), [_np_window(r[:, k], w, -1) for k in range(2)], atol=1e-6)
  np.testing.assert_allclose(wf(acc, 3), [_np_window(a0, 3, 1), _np_window(a1, 3, 1)], atol=1e-6)


@pytest.mark.slow
def test_continual_metrics_windows_and_where():
  a0 = [0.2, 0.5, 0.8, 0.9, 0.95, 0.4, 0.6, 0.8, 0.9, 0.92]
  a1 = [0.1, 0.1, 0.1, 0.1, 0.1, 0.3, 0.7, 0.85, 0.9, 0.93]
  acc = jnp.asarray(np.stack([a0, a1], 1), jnp.float32)
  np.testing.assert_allclose(windowed_forgetting(acc, 1), [0.0, 0.0], atol=1e-6)   # one evaluation: no change
  np.testing.assert_allclose(windowed_plasticity(acc, 10), [0.75, 0.83], atol=1e-6)
  r = np.random.default_rng(1).uniform(size=(40, 3)).astype(np.float32)
  for w in (3, 7):
    np.testing.assert_allclose(windowed_forgetting(r, w), [_np_window(r[:, k], w, 1) for k in range(3)], atol=1e-6)
    np.testing.assert_allclose(windowed_plasticity(r, w), [_np_window(r[:, k], w, -1) for k in range(3)], atol=1e-6)
  # where: evaluations left out do not count (the dip of task 0 masked away); the window still counts iterations.
  mask = np.ones((10, 2), bool)
  mask[5, 0] = False
  np.testing.assert_allclose(windowed_forgetting(acc, 2, where=jnp.asarray(mask))[0], 0.0, atol=1e-6)
  np.testing.assert_allclose(windowed_forgetting(acc, 3, where=jnp.asarray(mask))[0], 0.35, atol=1e-6)   # 0.95->0.6


def test_continual_metrics_bad_inputs():
  acc = jnp.zeros((5, 2))
  with pytest.raises(ValueError, match="task_end"):
    min_acc(acc, jnp.asarray([3]))
  with pytest.raises(ValueError, match="strictly increasing"):
    wc_acc(acc, jnp.asarray([3, 2]))
  with pytest.raises(TypeError, match="task_end"):
    min_acc(acc, jnp.asarray([1.0, 3.0]))
  with pytest.raises(ValueError, match="window"):
    windowed_forgetting(acc, 0)
  with pytest.raises(ValueError, match="step"):
    min_acc(acc, jnp.asarray([1, 3]), step=5)
  with pytest.raises(TypeError, match="acc"):
    windowed_plasticity(jnp.zeros((5, 2), int), 2)
