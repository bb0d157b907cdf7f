"""SMMix [34] (ls19d, issue 19): `data.smmix` against a NumPy brute force of the official max-min region mixing (every
window's attention mass by loops, first argmin / argmax), the label weights = the mixed area fractions (summing to
1), and `smmix_fine_grained_loss` / `smmix_consistency_loss` against float64 NumPy transcriptions of the official
`loss_fine` / `loss_con` (with the KL's gradient in closed form, and none reaching the un-mixed logits)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import data, losses


def _np_smmix(x, attn, partner, w):
  b, s = attn.shape[:2]
  p = x.shape[1] // s
  out = x.copy()
  mask = np.zeros((b, s, s), bool)
  sums = np.array([[[attn[i, r:r + w, c:c + w].sum() for c in range(s - w + 1)] for r in range(s - w + 1)]
                   for i in range(b)]).reshape(b, -1)
  n = s - w + 1
  for i in range(b):
    rt, ct = divmod(int(np.argmin(sums[i])), n)
    rs, cs = divmod(int(np.argmax(sums[partner[i]])), n)
    out[i, rt * p:(rt + w) * p, ct * p:(ct + w) * p] = x[partner[i], rs * p:(rs + w) * p, cs * p:(cs + w) * p]
    mask[i, rt:rt + w, ct:ct + w] = True
  return out, mask


def _np_log_softmax(z):
  m = z.max(-1, keepdims=True)
  return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def test_smmix_mixing_labels_and_losses_vs_numpy():
  rng = np.random.default_rng(0)
  b, s, p, k, w = 4, 5, 2, 3, 2
  x = rng.normal(size=(b, s * p, s * p, 3)).astype(np.float32)
  attn = rng.random((b, s, s)).astype(np.float32)
  y = np.eye(k, dtype=np.float32)[[0, 2, 1, 1]]
  partner = np.arange(b)[::-1].copy()                     # the official pairing: the reversed batch
  xm, ym, mask = jax.jit(lambda x_, y_, a_: data.smmix(x_, y_, a_, partner=partner, window=w))(x, y, attn)
  ref, ref_mask = _np_smmix(x, attn, partner, w)
  np.testing.assert_array_equal(np.asarray(xm), ref)       # A's max-attention window sits at B's min-attention one
  np.testing.assert_array_equal(np.asarray(mask), ref_mask)
  frac = ref_mask.reshape(b, -1).mean(1)                   # the pasted area fraction of each mixed image
  np.testing.assert_allclose(np.asarray(ym), (1 - frac)[:, None] * y + frac[:, None] * y[partner], rtol=1e-6)
  np.testing.assert_allclose(np.asarray(ym).sum(1), 1.0, rtol=1e-6)
  with jax.enable_x64(True):
    zt, zs, m, u = (rng.normal(size=(b, k)) for _ in range(4))
    lab = np.array([0, 2, 1, 1])
    lam = 1 - w * w / s ** 2

    def both(m_, u_):
      return (losses.smmix_fine_grained_loss(zt, zs, lab, partner=partner),
              losses.smmix_consistency_loss(m_, u_, lam, partner=partner))
    fine, con = jax.jit(both)(m, u)
    rows = np.arange(b)
    np.testing.assert_allclose(np.asarray(fine), -(_np_log_softmax(zt)[rows, lab]
                                                   + _np_log_softmax(zs)[rows, lab[partner]]) / 2, rtol=1e-12)
    tgt = np.exp(_np_log_softmax(lam * u + (1 - lam) * u[partner]))
    np.testing.assert_allclose(np.asarray(con), np.sum(tgt * (np.log(tgt) - _np_log_softmax(m)), 1), rtol=1e-11)
    gm, gu = jax.jit(jax.grad(lambda m_, u_: both(m_, u_)[1].sum(), argnums=(0, 1)))(m, u)
    np.testing.assert_allclose(np.asarray(gm), np.exp(_np_log_softmax(m)) - tgt, rtol=1e-11, atol=1e-14)
    assert np.all(np.asarray(gu) == 0)
  with pytest.raises(ValueError, match="window"):
    data.smmix(x, y, attn, partner=partner, window=s)
  with pytest.raises(ValueError, match="attn"):
    data.smmix(x, y, attn[:, :4], partner=partner, window=w)
  with pytest.raises(ValueError, match="lam"):
    losses.smmix_consistency_loss(m.astype(np.float32), u.astype(np.float32), 1.5, partner=partner)


def test_smmix_fine_grained_checks_the_partners_label_even_when_where_excludes_the_partner():
  # audit 2026-12-03: row 3 is excluded by `where` but is row 0's partner; its label 9 (K = 5) used to be clipped
  # to 4 silently and row 0 scored against it
  lg = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
  labels, partner, where = np.array([0, 1, 2, 9]), np.array([3, 0, 3, 2]), np.array([True, True, True, False])
  with pytest.raises(ValueError, match="partner"):
    losses.smmix_fine_grained_loss(lg, lg, labels, partner=partner, where=where)
  out = jax.jit(lambda y: losses.smmix_fine_grained_loss(lg, lg, y, partner=partner, where=where))(labels)
  assert np.isnan(np.asarray(out)[[0, 2]]).all() and np.isfinite(np.asarray(out)[1]) and np.asarray(out)[3] == 0
  # a junk label on an excluded row that no included row pastes from stays allowed
  ok = losses.smmix_fine_grained_loss(lg, lg, np.array([0, 1, 2, 9]), partner=np.array([1, 0, 1, 2]), where=where)
  assert np.isfinite(np.asarray(ok)).all()
