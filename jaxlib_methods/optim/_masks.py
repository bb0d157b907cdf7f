"""Which parameters the GaLore-family papers project, and how the project's 3-D attention weights become matrices.

GaLore (Zhao et al. 2024, arXiv:2403.03507), Q-GaLore (Zhang et al. 2024, arXiv:2407.08296) and FRUGAL (Zmushko
et al. 2024, arXiv:2411.07837) project (or split) only the linear weights of the attention and MLP blocks; the
embeddings, the output layer (unembedding / LM head), the norms and the biases keep a full optimizer. The official
GaLore and Q-GaLore code selects "Linear modules whose names contain 'attn' or 'mlp'"; `paper_projection_mask` applies
that rule to a params pytree by its path names and shapes, so it works on `nnx.state(model, nnx.Param)`, on plain
dicts, and on models whose variables carry extra metadata.
"""

from __future__ import annotations

import re
from typing import Any

import jax
import jax.numpy as jnp

from jaxlib_methods.optim import _contracts

BLOCK_TOKENS = ("attn", "attention", "mlp", "ffn", "feed_forward", "feedforward")
EXCLUDE_SUBSTRINGS = ("embed", "norm", "bias")
EXCLUDE_COMPONENTS = ("head", "lm_head", "wte", "wpe", "scale", "ln", "ln_f", "ln_1", "ln_2")


def _components(path) -> list[str]:
  out = []
  for k in path:
    name = getattr(k, "key", getattr(k, "name", getattr(k, "idx", None)))
    out.append(str(name).lower())
  while out and out[-1] in ("value", "raw_value"):  # nnx.Variable's payload
    out.pop()
  return out


def _excluded(parts: list[str]) -> bool:
  for p in parts:
    if any(s in p for s in EXCLUDE_SUBSTRINGS) or p in EXCLUDE_COMPONENTS or re.fullmatch(r"ln_?\d+", p):
      return True
  return False


def _in_block(parts: list[str]) -> bool:
  return any(any(t in p for t in BLOCK_TOKENS) for p in parts[:-1]) or any(t in parts[-1] for t in BLOCK_TOKENS)


def paper_projection_mask(params: Any) -> Any:
  """True at the attention and MLP weight matrices the GaLore / Q-GaLore / FRUGAL papers project, False elsewhere.

  A leaf is selected when it is floating point with rank >= 2 and non-zero size, some component of its path names an
  attention or MLP block ('attn', 'attention', 'mlp', 'ffn', 'feed_forward': the official code's "names containing
  'attn' or 'mlp'"), and no component names an embedding, a norm, a bias or an output head ('embed' anywhere,
  'norm', 'bias', or a component equal to 'head', 'lm_head', 'wte', 'wpe', 'scale', 'ln', 'ln_f', 'ln1'...). For
  `jaxlib_methods.nn.transformer.TransformerLM` this is every block's `attn.{q,k,v}_weight_dnh`, `attn.o_weight_nhd`
  (3-D: pass `reshape=paper_reshape` too), `mlp.w1`, `mlp.w2` (and the GLA projections, not its gate bias), never
  `embed_vd`, `unembed_dv` or the norms' scales.

  Args:
    params: a pytree of arrays (or `jax.ShapeDtypeStruct`s), e.g. `nnx.state(model, nnx.Param)`.

  Returns:
    A pytree of Python bools with the structure of `params` (use as `projection_mask=` / `split_mask=`; the function
    itself may be passed too).

  Example:
    >>> import jax.numpy as jnp
    >>> params = {"embed": jnp.ones((8, 4)), "blocks": [{"attn": {"q": jnp.ones((4, 4))}, "norm": jnp.ones(4)}]}
    >>> paper_projection_mask(params)
    {'blocks': [{'attn': {'q': True}, 'norm': False}], 'embed': False}

  References:
    Zhao et al., "GaLore", ICML 2024, arXiv:2403.03507; Zhang et al., "Q-GaLore", 2024, arXiv:2407.08296; Zmushko et
    al., "FRUGAL", ICML 2025, arXiv:2411.07837.
  """
  _contracts.reject_step_count(params, "paper_projection_mask")

  def pick(path, x):
    parts = _components(path)
    shape = jnp.shape(x)
    if len(shape) < 2 or 0 in shape or not jnp.issubdtype(jnp.result_type(x), jnp.floating):
      return False
    return bool(parts) and _in_block(parts) and not _excluded(parts)

  return jax.tree_util.tree_map_with_path(pick, params)


def _layout_suffix(name: str, ndim: int):
  suffix = name.rsplit("_", 1)[-1]
  if "_" in name and len(suffix) == ndim and suffix.isalpha():
    return suffix
  return None


def paper_reshape(params: Any) -> Any:
  """The matrix view of every leaf of rank >= 3 (the `reshape` option of galore / q_galore / frugal); None for the
  others.

  Rule, by name and shape: a name with an axis-letter layout suffix as this project's (`q_weight_dnh`,
  `o_weight_nhd`, `gate_up_rnk`) gives rows = every axis but the last when the suffix ends in the model dimension 'd'
  and does not start with it (`o_weight_nhd` [n, h, d] -> [n*h, d], the output projection), else rows = the first
  axis (`q_weight_dnh` [d, n, h] -> [d, n*h]) — the [out, in] Linear weights of the papers' LLaMA, transposed;
  otherwise a 4-D leaf is a conv kernel [kh, kw, cin, cout] -> "flatten" ([kh*kw*cin, cout]) and a 3-D leaf a stack
  of layers [L, m, n] -> "slices". Pass your own pytree where this guess is wrong.

  Args:
    params: a pytree of arrays (or `jax.ShapeDtypeStruct`s).

  Returns:
    A pytree with the structure of `params` of None / int row axes / "flatten" / "slices".

  Example:
    >>> import jax.numpy as jnp
    >>> paper_reshape({"q_weight_dnh": jnp.ones((8, 2, 4)), "o_weight_nhd": jnp.ones((2, 4, 8)), "w": jnp.ones((8, 8))})
    {'o_weight_nhd': 2, 'q_weight_dnh': 1, 'w': None}

  References:
    Zhao et al., "GaLore", ICML 2024, arXiv:2403.03507 (Linear weights as matrices).
  """
  _contracts.reject_step_count(params, "paper_reshape")

  def pick(path, x):
    nd = len(jnp.shape(x))
    if nd < 3:
      return None
    parts = _components(path)
    suffix = _layout_suffix(parts[-1], nd) if parts else None
    if suffix is not None:
      return nd - 1 if suffix[-1] == "d" and suffix[0] != "d" else 1
    return "flatten" if nd == 4 else "slices" if nd == 3 else "flatten"

  return jax.tree_util.tree_map_with_path(pick, params, is_leaf=lambda x: x is None)


__all__ = ["paper_projection_mask", "paper_reshape"]
