"""Hard patches mining for masked image modelling (HPM): the relative loss-prediction objective and the easy-to-hard
mask.

Paper [163]: Haochen Wang, Kaiyou Song, Junsong Fan, Yuxi Wang, Jin Xie, Zhaoxiang Zhang, "Hard Patches Mining for
Masked Image Modeling", CVPR 2023, arXiv:2304.05919 (the catalog's title "Bootstrap Masked Visual Modeling via Hard
Patches Mining" is the journal extension, arXiv:2312.13714; section and equation numbers of the papers were not
readable here, the forms follow the official code). Official code: https://github.com/Haochen-Wang409/HPM
(models_mae_learn_loss.py `forward_learning_loss(relative=True)` and `generate_mask`).

An auxiliary head predicts, per patch, the reconstruction loss the MAE will incur there. It is trained with a
relative (pairwise ranking) objective, so only the ORDER of the patch losses is learnt: for masked patches
i, j of one image with reconstruction losses L_i != L_j (held fixed: stop-gradient),

    l = - sum_{i, j} [ 1(L_j > L_i) log sigma(p_j - p_i) + 1(L_j < L_i) log(1 - sigma(p_j - p_i)) ]
        / #{(i, j): L_i != L_j}.

The next mask hides the patches predicted to be hardest, mixed easy-to-hard: of the n_mask masked patches,
a fraction alpha_t = alpha_0 + (t + 1) / T (alpha_T - alpha_0) (official: alpha_0 = 0, alpha_T = 0.5) are the top
predicted-loss patches, the rest uniformly random among the others.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


def hpm_relative_loss(pred_loss: jax.Array, recon_loss: jax.Array, *, where: Any = None) -> jax.Array:
  """HPM's relative loss-prediction objective per image: pairwise BCE on the order of the patches' losses.

  Wang et al., "Hard Patches Mining for Masked Image Modeling", CVPR 2023, arXiv:2304.05919, the relative
  loss-prediction objective (form of the official `forward_learning_loss(relative=True)`). For image n, over ordered
  pairs (i, j) of selected patches with recon_loss[n, i] != recon_loss[n, j]:

      l_n = sum_{i, j} BCE(sigma(p_j - p_i), 1(L_j > L_i)) / #{(i, j): L_i != L_j},

  with `recon_loss` behind `lax.stop_gradient` (the head learns the MAE's losses, never the other way round).
  log sigma is computed stably (the official code adds 1e-6 inside the log). The official code normalises by the
  batch's total number of valid pairs; with the same number of valid pairs in every image (no ties) that equals the
  mean of this per-image loss. Ties and unselected patches contribute nothing; an image with no valid pair gives 0.

  Args:
    pred_loss: [N, L] floating predicted per-patch losses p (the auxiliary head's output).
    recon_loss: [N, L] floating per-patch reconstruction losses L (no gradient flows into them).
    where: optional [N, L] bool patch mask (e.g. the masked patches, which are the ones HPM scores).

  Returns:
    [N] per-image losses, in the dtype of `pred_loss` (half precision computed in float32).
  """
  p = validation.check_floating(pred_loss, "pred_loss")
  t = validation.check_floating(recon_loss, "recon_loss")
  if p.ndim != 2:
    raise ValueError(f"pred_loss must be [N, L] (images, patches), got pred_loss.shape={p.shape}")
  if t.shape != p.shape:
    raise ValueError(f"recon_loss must have pred_loss's shape {p.shape}, got recon_loss.shape={t.shape}")
  w = validation.check_where(where, p.shape, "where")
  ct = validation.compute_dtype_for(p.dtype)
  pc = p.astype(ct)
  tc = jax.lax.stop_gradient(t).astype(ct)
  diff = pc[:, None, :] - pc[:, :, None]                      # [n, i, j] = p_j - p_i
  pos = tc[:, None, :] > tc[:, :, None]                       # L_j > L_i
  neg = tc[:, None, :] < tc[:, :, None]
  if w is not None:
    pair = w[:, None, :] & w[:, :, None]
    pos, neg = pos & pair, neg & pair
  # NaN in a loss makes every comparison False: poison the image explicitly (docs/conventions.md, rule 3)
  finite = jnp.all(jnp.isfinite(tc) | (False if w is None else ~w), axis=-1)
  bce = jnp.where(pos, -jax.nn.log_sigmoid(diff), 0.0) + jnp.where(neg, -jax.nn.log_sigmoid(-diff), 0.0)
  count = jnp.sum(pos | neg, axis=(1, 2))
  out = jnp.sum(bce, axis=(1, 2)) / jnp.maximum(count, 1)
  out = validation.nan_where_invalid(out, finite)
  return out.astype(p.dtype)


def hpm_easy_to_hard_mask(key: jax.Array, pred_loss: jax.Array, *, mask_ratio: float = 0.75, epoch: int,
                          total_epochs: int, alpha_0: float = 0.0, alpha_T: float = 0.5) -> jax.Array:
  """HPM's easy-to-hard mask: the top predicted-loss patches plus random ones, n_mask = L - int(L (1 - ratio)).

  Wang et al. 2023, arXiv:2304.05919, the easy-to-hard mask (form of the official `generate_mask`): alpha_t = alpha_0 +
  (t + 1) / T (alpha_T - alpha_0); the k = int(n_mask alpha_t) patches with the largest `pred_loss` are masked, and
  n_mask - k more are drawn uniformly among the other L - k patches. k = 0 gives MAE's random mask; alpha_t = 1
  masks exactly the n_mask top-predicted patches. `pred_loss` is only ranked (no gradient; the official function
  runs under `torch.no_grad`).

  Args:
    key: a PRNG key.
    pred_loss: [N, L] floating predicted per-patch losses (from the EMA model's head in the official code).
    mask_ratio: the fraction of masked patches, in [0, 1).
    epoch: the current epoch t in [0, T) (an int; an integer scalar array may be traced, e.g. inside a scan over
      the epochs: it is then clipped into [0, T) and k is computed in float32).
    total_epochs: T > epoch (a Python int).
    alpha_0: the hard fraction's start, in [0, 1].
    alpha_T: the hard fraction at the last epoch, in [0, 1].

  Returns:
    bool [N, L], True where the patch is masked (removed), exactly n_mask per row. A NaN or infinite `pred_loss`
    is a ValueError when concrete; under jit it is ranked as is (a bool output cannot carry NaN).
  """
  p = validation.check_floating(pred_loss, "pred_loss")
  if p.ndim != 2 or p.shape[1] < 1:
    raise ValueError(f"pred_loss must be [N, L] with L >= 1 patches, got pred_loss.shape={p.shape}")
  validation.check_in_interval(mask_ratio, "mask_ratio", 0.0, 1.0, closed_high=False)
  if isinstance(total_epochs, bool) or not isinstance(total_epochs, (int, np.integer)) or total_epochs < 1:
    raise ValueError(f"total_epochs must be a Python int >= 1, got total_epochs={total_epochs!r}")
  concrete = validation.is_concrete_number(epoch)
  if concrete:
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) and not (
        hasattr(epoch, "dtype") and jnp.issubdtype(epoch.dtype, jnp.integer)):
      raise TypeError(f"epoch must be an int, got epoch={epoch!r}")
    if not 0 <= int(epoch) < total_epochs:
      raise ValueError(f"epoch must lie in [0, total_epochs), got epoch={epoch}, total_epochs={total_epochs}")
  else:
    validation.check_integer(epoch, "epoch")
    if np.ndim(epoch) != 0:
      raise ValueError(f"epoch must be a scalar, got epoch.shape={np.shape(epoch)}")
  validation.check_in_interval(alpha_0, "alpha_0", 0.0, 1.0)
  validation.check_in_interval(alpha_T, "alpha_T", 0.0, 1.0)
  # a bool mask cannot carry NaN: a non-finite predicted loss is an error when concrete (docs/conventions.md 5)
  validation.check_values(jnp.isfinite(p), pred_loss, "pred_loss", "finite")
  n, length = p.shape
  n_mask = length - int(length * (1 - mask_ratio))
  k_of = lambda t: int(n_mask * (float(alpha_0) + (t + 1) / total_epochs * (float(alpha_T) - float(alpha_0))))
  if concrete:
    k = k_of(int(epoch))
  elif validation.is_concrete_number(alpha_0) and validation.is_concrete_number(alpha_T):
    # a traced epoch (e.g. inside one scan over the epochs): the eager path's k for every epoch, in float64 as the
    # official Python code computes it, so jit and eager give the same mask; out of [0, T) it is clipped into range
    k = jnp.asarray(np.array([k_of(t) for t in range(total_epochs)], np.int32))[jnp.clip(epoch, 0, total_epochs - 1)]
  else:  # traced alphas too: float32 arithmetic (k may differ by one from the float64 value at exact boundaries)
    e = jnp.clip(epoch, 0, total_epochs - 1).astype(jnp.float32)
    k = jnp.floor(n_mask * (alpha_0 + (e + 1) / total_epochs * (alpha_T - alpha_0)) + 1e-6).astype(jnp.int32)
  rank = lambda s: jnp.argsort(jnp.argsort(s, axis=1), axis=1)   # 0 = smallest
  pc = jax.lax.stop_gradient(p)
  top = rank(pc) >= length - k                                   # the k largest predicted losses
  score = jnp.where(top, 2.0, jax.random.uniform(key, (n, length)))
  return rank(score) >= length - n_mask
