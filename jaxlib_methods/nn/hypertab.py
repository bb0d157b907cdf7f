"""HyperTab: a hypernetwork that turns random feature subsets into an ensemble of small target networks ([125]).

Witold Wydmański, Oleksii Bulenok, Marek Śmieja, "HyperTab: Hypernetwork Approach for Deep Learning on Small Tabular
Datasets", 2023, arXiv:2304.03543, Sec. 3. V views are fixed at initialisation, each a random subset of
`subset_size` of the D features (a binary mask m_v). One hypernetwork h (here `MIPHyperNet` with MIP off: a plain
MLP) maps a mask to the weights of a small target network, theta_v = h(m_v); target network v sees x restricted to
its subset (x * m_v, and its first-layer rows outside the subset are zeroed as well, so its output depends on the
subset only). Every view is trained with the task loss; the prediction averages the views' class probabilities
(soft voting). The trainable parameters are the hypernetwork's, whatever the number of views: the views are
data augmentation, not parameters.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlib_methods import validation
from jaxlib_methods.nn.hypernetwork import MIPHyperNet


class FeatureMasks(nnx.Variable):
  """HyperTab's fixed view masks [V, D] (float 0/1, V views over D features; not trained).

  Wydmański et al., "HyperTab: Hypernetwork Approach for Deep Learning on Small Tabular Datasets", 2023,
  arXiv:2304.03543, Sec. 3: the binary masks m_v of the random feature subsets, fixed at initialisation.
  """



class HyperTab(nnx.Module):
  """Hypernetwork h: feature mask -> weights of a D -> hidden -> C ReLU target MLP; an ensemble over V views.

  Wydmański et al., "HyperTab: Hypernetwork Approach for Deep Learning on Small Tabular Datasets", 2023,
  arXiv:2304.03543, Sec. 3 (Fig. 1): theta_v = h(m_v), f_v(x) = W2 relu((W1 * m_v[:, None])^T (x * m_v) + b1) + b2.

  Attributes:
    masks: [V, D] the views' feature masks (`FeatureMasks`, float 0/1).
    hypernet: the hypernetwork (a `MIPHyperNet` without the MIP encoding and residual).
  """

  def __init__(self, in_features: int, num_classes: int, *, num_views: int, subset_size: int, hidden: int = 16,
               hyper_hidden: Sequence[int] = (64,), param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    """Builds the views and the hypernetwork.

    Args:
      in_features: D >= 1.
      num_classes: C >= 2.
      num_views: V >= 1 (the paper uses many, e.g. hundreds).
      subset_size: features per view, 1 <= subset_size <= D.
      hidden: the target network's hidden width.
      hyper_hidden: the hypernetwork's hidden widths.
      param_dtype: the hypernetwork's parameter dtype.
      rngs: random streams: `params` for the hypernetwork and the masks.
    """
    self.in_features = validation.check_int(in_features, "in_features", 1, value_error=True)
    self.num_classes = validation.check_int(num_classes, "num_classes", 2, value_error=True)
    v = validation.check_int(num_views, "num_views", 1, value_error=True)
    s = validation.check_int(subset_size, "subset_size", 1, value_error=True)
    if s > self.in_features:
      raise ValueError(f"subset_size must be <= in_features={self.in_features}, got {subset_size=}")
    self.hidden = validation.check_int(hidden, "hidden", 1, value_error=True)
    u = jax.random.uniform(rngs.params(), (v, self.in_features))   # a uniformly random subset of s per view
    self.masks = FeatureMasks((jnp.argsort(jnp.argsort(u, axis=1), axis=1) < s).astype(param_dtype))
    d, h, c = self.in_features, self.hidden, self.num_classes
    self.shapes = ((d, h), (h,), (h, c), (c,))
    size = d * h + h + h * c + c
    self.hypernet = MIPHyperNet(d, tuple(hyper_hidden), size, encoding=None, residual=False, use_bias=True,
                                param_dtype=param_dtype, rngs=rngs)

  def target_params(self, mask: jax.Array) -> tuple[jax.Array, ...]:
    """(W1 [D, hidden] with rows outside the subset zeroed, b1, W2, b2) = h(mask), for one mask [D]."""
    flat = self.hypernet(mask)
    out, i = [], 0
    for shape in self.shapes:
      n = int(np.prod(shape))
      out.append(flat[..., i:i + n].reshape(flat.shape[:-1] + shape))
      i += n
    w1, b1, w2, b2 = out
    return w1 * mask[..., :, None], b1, w2, b2

  def view_logits(self, x: jax.Array) -> jax.Array:
    """[V, B, C]: every view's target network on its own feature subset.

    Args:
      x: [B, D] floating features.

    Returns:
      The views' logits.
    """
    x = validation.check_floating(x, "x")
    if x.ndim != 2 or x.shape[1] != self.in_features:
      raise ValueError(f"x must be [B, {self.in_features}], got x.shape={x.shape}")

    def one(mask):
      w1, b1, w2, b2 = self.target_params(mask)
      xm = (x * mask).astype(w1.dtype)
      return jax.nn.relu(xm @ w1 + b1) @ w2 + b2

    return jax.vmap(one)(self.masks[...].astype(x.dtype))

  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, C] log of the views' mean class probabilities (soft voting; argmax = the ensemble's prediction).

    Args:
      x: [B, D] floating features.

    Returns:
      The ensemble's log-probabilities.
    """
    logits = self.view_logits(x)
    return jax.nn.logsumexp(jax.nn.log_softmax(logits.astype(jnp.float32), -1), axis=0) - jnp.log(logits.shape[0])
