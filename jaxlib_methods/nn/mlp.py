"""MLPs with a selectable width/depth parametrisation (SP, NTK, µP, depth-µP).

Used by [92] Noci et al., "Why do Learning Rates Transfer? Reconciling Optimization and Scaling Limits for Deep
Learning", 2024, arXiv:2402.17457 (µP vs NTK sharpness across widths), by [185] Prieto et al. 2025,
arXiv:2501.04697 (the bias-free 226-200-200-113 ReLU MLP with PyTorch's default init) and by the other toy
experiments. The per-layer numbers come from `jaxlib_methods.nn.parametrization` (see its table); each weight's LR
multiplier is stored in its `nnx.Param` metadata, read with `parametrization.lr_multipliers(model)`.
"""

from __future__ import annotations

from typing import Callable, Literal, Optional

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods.nn import parametrization as pz

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu, "gelu": jax.nn.gelu, "tanh": jnp.tanh, "linear": lambda x: x, "silu": jax.nn.silu,
}


class ScaledDense(nnx.Module):
  """y = multiplier * (x @ W) [+ b], W [fan_in, fan_out] ~ init_std * N(0, 1) (or U(±sqrt(3) init_std)).
  x [..., fan_in] -> y [..., fan_out].

  The dense layer of the abc-parametrisations (µP: Yang et al., "Tensor Programs V", 2022, arXiv:2203.03466,
  Table 3; see `parametrization`), as used by Noci et al., "Why do Learning Rates Transfer?", 2024,
  arXiv:2402.17457.

  Args:
    fan_in, fan_out: shape.
    scale: the layer's `parametrization.LayerScale` (multiplier, init std, LR multiplier stored as metadata).
    use_bias: add a bias (initialised to 0; same LR multiplier as the weight).
    init_distribution: 'normal', 'uniform' (same std as 'normal') or 'torch_uniform' (U(-init_std, init_std), i.e.
      std init_std / sqrt(3): with SP this is PyTorch's nn.Linear default, U(±1/sqrt(fan_in))).
    zero_init: initialise W to 0 (µP allows it for the output layer).
    dtype, param_dtype: computation and parameter dtypes.
    rngs: nnx.Rngs with a 'params' stream.
  """

  def __init__(self, fan_in: int, fan_out: int, *, scale: pz.LayerScale, use_bias: bool = False,
               init_distribution: Literal["normal", "uniform", "torch_uniform"] = "normal", zero_init: bool = False,
               dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
    if fan_in <= 0 or fan_out <= 0:
      raise ValueError(f"fan_in and fan_out must be positive, got {fan_in=}, {fan_out=}")
    if init_distribution not in ("normal", "uniform", "torch_uniform"):
      raise ValueError(f"init_distribution must be 'normal', 'uniform' or 'torch_uniform', got {init_distribution=}")
    key = rngs.params()
    if zero_init:
      w = jnp.zeros((fan_in, fan_out), param_dtype)
    elif init_distribution == "normal":
      w = scale.init_std * jax.random.normal(key, (fan_in, fan_out), param_dtype)
    else:
      bound = scale.init_std * (jnp.sqrt(3.0) if init_distribution == "uniform" else 1.0)
      w = jax.random.uniform(key, (fan_in, fan_out), param_dtype, -bound, bound)
    self.kernel = nnx.Param(w, lr_multiplier=scale.lr_multiplier)
    self.bias = nnx.Param(jnp.zeros((fan_out,), param_dtype), lr_multiplier=scale.lr_multiplier) if use_bias else None
    self.multiplier = scale.multiplier
    self.dtype = dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    y = self.multiplier * (x.astype(self.dtype) @ self.kernel[...].astype(self.dtype))
    if self.bias is not None:
      y = y + self.bias[...].astype(self.dtype)
    return y


class MLP(nnx.Module):
  """in -> width (x num_hidden_layers) -> out, with a chosen parametrisation.

  h_1 = phi(W_in x); h_{l+1} = phi(W_l h_l) (or, with `residual`, h_l + branch * phi(W_l h_l)); f = W_out h_L.

  Args:
    in_features, width, out_features: layer sizes (> 0).
    num_hidden_layers: number of width x width layers after the input layer (>= 0). The grokking MLP
      226 -> 200 -> 200 -> 113 is `MLP(226, 200, 113, num_hidden_layers=1)`.
    parametrization: 'sp', 'ntk' or 'mup' (see `parametrization.py`).
    base_width: width at which µP equals SP (default: `width`, so m = 1).
    optimizer: 'adam' or 'sgd': which µP LR rule to store in the params' metadata.
    depth_mup: residual branches scaled by sqrt(base_depth / num_hidden_layers) and (Adam) the hidden blocks' LR
      multiplied by the same factor (Tensor Programs VI, arXiv:2310.02244, Sec. 4). Requires `residual`.
    base_depth: depth at which depth-µP equals the plain residual net (default 1).
    residual: residual connections around the hidden layers.
    activation: 'relu', 'gelu', 'tanh', 'silu' or 'linear'.
    use_bias: biases in every layer.
    init_distribution: 'normal', 'uniform' or 'torch_uniform' (PyTorch's nn.Linear default is SP +
      'torch_uniform').
    zero_init_output: zero the readout (allowed by µP).
    dtype, param_dtype, rngs: as Flax.
  """

  def __init__(self, in_features: int, width: int, out_features: int, *, num_hidden_layers: int = 1,
               parametrization: pz.Parametrization = "sp", base_width: Optional[int] = None,
               optimizer: pz.OptimizerFamily = "adam", depth_mup: bool = False, base_depth: int = 1,
               residual: bool = False, activation: str = "relu", use_bias: bool = False,
               init_distribution: Literal["normal", "uniform", "torch_uniform"] = "normal",
               zero_init_output: bool = False,
               dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
    pz.check_parametrization(parametrization, optimizer)
    for name, v in (("in_features", in_features), ("width", width), ("out_features", out_features)):
      if not isinstance(v, int) or v <= 0:
        raise ValueError(f"{name} must be a positive int, got {name}={v!r}")
    if num_hidden_layers < 0:
      raise ValueError(f"num_hidden_layers must be >= 0, got {num_hidden_layers=}")
    if activation not in _ACTIVATIONS:
      raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation=}")
    if depth_mup and not residual:
      raise ValueError("depth_mup scales residual branches: set residual=True")
    if depth_mup and num_hidden_layers == 0:
      raise ValueError("depth_mup needs num_hidden_layers >= 1")
    base_width = width if base_width is None else base_width
    if base_width <= 0:
      raise ValueError(f"base_width must be positive, got {base_width=}")
    kw = dict(use_bias=use_bias, init_distribution=init_distribution, dtype=dtype, param_dtype=param_dtype,
              rngs=rngs)
    s_in = pz.layer_scale(parametrization, "input", in_features, width, base_fan_in=in_features,
                          base_fan_out=base_width, optimizer=optimizer)
    s_hid = pz.layer_scale(parametrization, "hidden", width, width, base_fan_in=base_width,
                           base_fan_out=base_width, optimizer=optimizer)
    s_out = pz.layer_scale(parametrization, "output", width, out_features, base_fan_in=base_width,
                           base_fan_out=out_features, optimizer=optimizer)
    self.branch_multiplier = 1.0
    if depth_mup:
      self.branch_multiplier = pz.depth_branch_multiplier(num_hidden_layers, base_depth)
      if optimizer == "adam":
        s_hid = pz.LayerScale(s_hid.multiplier, s_hid.init_std, s_hid.lr_multiplier * self.branch_multiplier)
    self.input_layer = ScaledDense(in_features, width, scale=s_in, **kw)
    self.hidden_layers = nnx.List([ScaledDense(width, width, scale=s_hid, **kw) for _ in range(num_hidden_layers)])
    self.output_layer = ScaledDense(width, out_features, scale=s_out, zero_init=zero_init_output, **kw)
    self.activation = activation
    self.residual = residual

  def __call__(self, x: jax.Array, *, return_activations: bool = False):
    """x [..., in_features] -> logits [..., out_features]; with `return_activations`, also the list of hidden
    activations [..., width] (one per hidden layer, input layer first), which coordinate checks measure."""
    if x.shape[-1] != self.input_layer.kernel.shape[0]:
      raise ValueError(f"x's last axis must be {self.input_layer.kernel.shape[0]}, got {x.shape=}")
    phi = _ACTIVATIONS[self.activation]
    h = phi(self.input_layer(x))
    acts = [h]
    for layer in self.hidden_layers:
      h = h + self.branch_multiplier * phi(layer(h)) if self.residual else phi(layer(h))
      acts.append(h)
    out = self.output_layer(h)
    return (out, acts) if return_activations else out


__all__ = ["MLP", "ScaledDense"]
