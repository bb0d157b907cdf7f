"""Magnitude Invariant Parametrizations (MIP) for hypernetworks ([72]).

Jose Javier Gonzalez Ortiz, John Guttag, Adrian V. Dalca, "Magnitude Invariant Parametrizations Improve Hypernetwork
Learning", ICLR 2024, arXiv:2304.07645. A hypernetwork h maps hyperparameters gamma in [0, 1]^k to the flat
parameters theta of a primary network. With ReLU and no biases, h is positively homogeneous: h(alpha gamma) =
alpha h(gamma) for alpha >= 0, so the primary network's parameter magnitude is proportional to the input's
(Sec. 3, "magnitude proportionality"), which destabilises training. MIP (Sec. 4, Fig. 2) fixes both ends: the
input is encoded with constant norm, E(gamma) = [cos(pi gamma / 2), sin(pi gamma / 2)] (||E(gamma)||^2 = k for
every gamma), and the output is an additive change to independent parameters, theta = theta_0 + Delta theta(gamma)
(`mip_encode`, `MIPHyperNet`).
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlib_methods import validation


def mip_encode(gamma: jax.Array) -> jax.Array:
  """The MIP constant-norm input encoding E(gamma) = [cos(pi gamma / 2), sin(pi gamma / 2)].

  Gonzalez Ortiz, Guttag, Dalca, "Magnitude Invariant Parametrizations Improve Hypernetwork Learning", ICLR 2024,
  arXiv:2304.07645, Sec. 4 (input encoding): every coordinate gamma_i in [0, 1] becomes the unit 2-vector
  (cos(pi gamma_i / 2), sin(pi gamma_i / 2)), so ||E(gamma)||^2 = k whatever gamma; the cosines of all k
  coordinates come first, then the sines. Values outside [0, 1] are encoded too (the map is periodic), but lose the
  one-to-one property the paper relies on.

  Args:
    gamma: [..., k] floating hyperparameters, nominally in [0, 1].

  Returns:
    [..., 2k] the encoding, in gamma's dtype.
  """
  g = validation.check_floating(gamma, "gamma")
  if g.ndim < 1:
    raise ValueError(f"gamma must be [..., k] with k >= 1, got gamma.shape={g.shape}")
  z = jnp.pi * g / 2
  return jnp.concatenate([jnp.cos(z), jnp.sin(z)], axis=-1)


class MIPHyperNet(nnx.Module):
  """A fully connected hypernetwork gamma -> theta, with or without the MIP parametrisation.

  Gonzalez Ortiz, Guttag, Dalca, "Magnitude Invariant Parametrizations Improve Hypernetwork Learning", ICLR 2024,
  arXiv:2304.07645, Sec. 3-4: `encoding="cos|sin"` and `residual=True` give MIP,
  theta = theta_0 + W_L relu(... relu(W_1 E(gamma) + b_1) ...) (theta_0 an independent `nnx.Param`, initialised to
  the primary network's own initialisation when passed as `theta0_init`); `encoding=None, residual=False,
  use_bias=False` is the bias-free ReLU baseline of Sec. 3 whose output is positively homogeneous in gamma.

  Attributes:
    in_features: k, the number of hyperparameters.
    out_features: P, the number of primary-network parameters (flat).
    encoding: "cos|sin" or None.
    residual: whether theta = theta_0 + h(E(gamma)).
  """

  def __init__(self, in_features: int, hidden: Sequence[int], out_features: int, *,
               encoding: Optional[Literal["cos|sin"]] = "cos|sin", residual: bool = True, use_bias: bool = True,
               theta0_init: Optional[jax.Array] = None, param_dtype: Any = jnp.float32, dtype: Any = None,
               rngs: nnx.Rngs):
    """Builds the hypernetwork.

    Args:
      in_features: k >= 1.
      hidden: the hidden widths (each >= 1; may be empty).
      out_features: P >= 1.
      encoding: "cos|sin" (MIP) or None (gamma fed as is).
      residual: MIP's additive output theta_0 + Delta theta.
      use_bias: biases in the hidden and output layers (False with encoding=None, residual=False: homogeneous).
      theta0_init: [P] initial theta_0 (default zeros); only with residual=True.
      param_dtype: the dtype of the parameters.
      dtype: the computation dtype (None: promoted).
      rngs: the random streams (`params`).
    """
    for name, v in (("in_features", in_features), ("out_features", out_features)):
      if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {name}={v!r}")
    hidden = tuple(hidden)
    if any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in hidden):
      raise ValueError(f"hidden must be a sequence of ints >= 1, got {hidden=}")
    if encoding not in ("cos|sin", None):
      raise ValueError(f"encoding must be 'cos|sin' or None, got {encoding=}")
    if theta0_init is not None and not residual:
      raise ValueError("theta0_init needs residual=True")
    self.in_features, self.out_features = int(in_features), int(out_features)
    self.encoding, self.residual, self.dtype = encoding, bool(residual), dtype
    sizes = (self.in_features * (2 if encoding else 1),) + hidden + (self.out_features,)
    self.layers = nnx.List([nnx.Linear(a, b, use_bias=use_bias, param_dtype=param_dtype, dtype=dtype, rngs=rngs)
                            for a, b in zip(sizes[:-1], sizes[1:])])
    if residual:
      t0 = jnp.zeros((self.out_features,), param_dtype) if theta0_init is None else jnp.asarray(theta0_init)
      if t0.shape != (self.out_features,):
        raise ValueError(f"theta0_init must be [{self.out_features}], got shape {t0.shape}")
      self.theta0 = nnx.Param(t0.astype(param_dtype))

  def __call__(self, gamma: jax.Array) -> jax.Array:
    """Predicts the primary parameters.

    Args:
      gamma: [..., k] floating hyperparameters.

    Returns:
      [..., P] flat primary-network parameters theta(gamma).
    """
    g = validation.check_floating(gamma, "gamma")
    if g.ndim < 1 or g.shape[-1] != self.in_features:
      raise ValueError(f"gamma must be [..., {self.in_features}], got gamma.shape={g.shape}")
    x = mip_encode(g) if self.encoding else g
    for i, layer in enumerate(self.layers):
      x = layer(x)
      if i < len(self.layers) - 1:
        x = jax.nn.relu(x)
    if self.residual:
      x = x + self.theta0[...]
    return x
