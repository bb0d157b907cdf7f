"""LAE: the online/offline expert ensemble of Learning-Accumulation-Ensemble continual learning ([134]).

Qiankun Gao, Chen Zhao, Yifan Sun, Teng Xi, Gang Zhang, Bernard Ghanem, Jian Zhang, "A Unified Continual Learning
Framework with General Parameter-Efficient Tuning", ICCV 2023, arXiv:2303.10070, Sec. 3. A frozen pre-trained
model carries two parameter-efficient tuning (PET) modules (Adapter, LoRA or Prefix; `flax.nnx.LoRA` serves): the
online one learns the current task (after a few head-only steps, the paper's adaptation-speed calibration), the
offline one accumulates it by a momentum (EMA) update theta_off <- m theta_off + (1 - m) theta_on (use
`optax.incremental_update(online, offline, step_size=1 - m)`; m = 0.9999 in the paper's code). At inference the two
experts are ensembled by taking, class by class, the larger of their softmax probabilities (`lae_ensemble`, as in
the authors' code: `torch.stack([softmax(on), softmax(off)], -1).max(-1)`), then the argmax.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


def lae_ensemble(logits_online: jax.Array, logits_offline: jax.Array, *, axis: int = -1) -> jax.Array:
  """LAE's expert ensemble: max(softmax(online), softmax(offline)), class by class.

  Gao et al., "A Unified Continual Learning Framework with General Parameter-Efficient Tuning", ICCV 2023,
  arXiv:2303.10070, Sec. 3.3 (Ensemble) and the authors' evaluation code. The result is a score per class (not
  renormalised); predict with its argmax.

  Args:
    logits_online: [..., K] logits of the expert with the online PET module.
    logits_offline: [..., K] logits of the expert with the offline (EMA) PET module, same shape and dtype.
    axis: the class axis.

  Returns:
    [..., K] ensemble scores in [0, 1], in float32 (or wider).
  """
  a = validation.check_floating(logits_online, "logits_online")
  b = validation.check_floating(logits_offline, "logits_offline")
  validation.check_same_shape_and_dtype("logits_online", a, "logits_offline", b)
  ax = validation.check_axis(axis, a.ndim)
  dt = validation.compute_dtype_for(a.dtype)
  return jnp.maximum(jax.nn.softmax(a.astype(dt), axis=ax), jax.nn.softmax(b.astype(dt), axis=ax))
