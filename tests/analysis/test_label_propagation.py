"""[62] label propagation vs a float64 NumPy loop transcription of the paper's rule, and the catalog's check in
miniature: with ideal (per-pixel unique) features a translated frame's labels are copied exactly when radius >= motion,
and not when radius < motion."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.analysis import label_propagation


def _numpy_propagation(f_ref, y_ref, f_tgt, topk, temperature, radius):
  N, H, W, D = f_ref.shape
  fr = f_ref / np.linalg.norm(f_ref, axis=-1, keepdims=True)
  ft = f_tgt / np.linalg.norm(f_tgt, axis=-1, keepdims=True)
  out = np.zeros((H, W, y_ref.shape[-1]))
  for i in range(H):
    for j in range(W):
      cand = [(ft[i, j] @ fr[n, a, b] / temperature, y_ref[n, a, b]) for n in range(N) for a in range(H)
              for b in range(W) if radius is None or (a - i) ** 2 + (b - j) ** 2 <= radius ** 2]
      cand.sort(key=lambda t: -t[0])
      s = np.array([c[0] for c in cand[:topk]])
      w = np.exp(s - s.max())
      w /= w.sum()
      out[i, j] = sum(wi * c[1] for wi, c in zip(w, cand[:topk]))
  return out


def test_label_propagation_vs_numpy_and_translation():
  rng = np.random.default_rng(0)
  N, H, W, D, K = 2, 4, 5, 6, 3
  f_ref, f_tgt = rng.normal(size=(N, H, W, D)), rng.normal(size=(H, W, D))
  y_ref = np.eye(K)[rng.integers(0, K, size=(N, H, W))]
  for topk, radius in ((3, 1.5), (40, None)):
    got = jax.jit(label_propagation, static_argnames=("topk", "temperature", "radius"))(
        jnp.asarray(f_ref, jnp.float32), jnp.asarray(y_ref, jnp.float32), jnp.asarray(f_tgt, jnp.float32), topk=topk,
        temperature=0.1, radius=radius)
    np.testing.assert_allclose(got, _numpy_propagation(f_ref, y_ref, f_tgt, topk, 0.1, radius), atol=1e-5)
  # Translation by 2 pixels with ideal features: every pixel has its own feature, carried with it.
  H2 = W2 = 8
  tex = rng.normal(size=(H2 + 2, W2, 16))
  labels = np.eye(2)[(np.arange(H2 + 2)[:, None] // 3 + np.arange(W2)[None] // 3) % 2]
  ref_f, ref_y = tex[2:][None], labels[2:][None]          # frame 0 shows rows 2.. ; the target shows rows 0..
  tgt_f, tgt_y = tex[:H2], labels[:H2]                    # so content moved down by 2 pixels
  prop = jax.jit(lambda a, b, c: label_propagation(a, b, c, topk=1, temperature=0.05, radius=2.0))
  acc = lambda out, valid: np.mean(np.argmax(out, -1)[valid] == np.argmax(tgt_y, -1)[valid])
  visible = np.arange(H2)[:, None].repeat(W2, 1) >= 2  # rows whose content is in the reference frame
  out = prop(jnp.asarray(ref_f, jnp.float32), jnp.asarray(ref_y, jnp.float32), jnp.asarray(tgt_f, jnp.float32))
  assert acc(np.asarray(out), visible) == 1.0
  small = jax.jit(lambda a, b, c: label_propagation(a, b, c, topk=1, temperature=0.05, radius=1.0))(
      jnp.asarray(ref_f, jnp.float32), jnp.asarray(ref_y, jnp.float32), jnp.asarray(tgt_f, jnp.float32))
  assert acc(np.asarray(small), visible) < 0.9  # the true match lies outside the window


def test_label_propagation_errors():
  f = jnp.zeros((1, 2, 2, 3))
  y = jnp.zeros((1, 2, 2, 2))
  with pytest.raises(ValueError, match="f_tgt"):
    label_propagation(f, y, jnp.zeros((2, 3, 3)), topk=1, temperature=1.0)
  with pytest.raises(ValueError, match="temperature"):
    label_propagation(f, y, jnp.zeros((2, 2, 3)), topk=1, temperature=0.0)
  with pytest.raises(ValueError, match="topk"):
    label_propagation(f, y, jnp.zeros((2, 2, 3)), topk=0, temperature=1.0)
