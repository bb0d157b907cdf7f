"""Riemannian SGD with momentum on the Grassmann manifold: the optimizer of the Grassmann Class Representation.

Paper [97]: Haoqi Wang, Zhizhong Li, Wayne Zhang, "Get the Best of Both Worlds: Improving Accuracy and
Transferability by Grassmann Class Representation", ICCV 2023, arXiv:2308.01547 (Sec. 3, Riemannian SGD with
momentum for the class subspaces, jointly with Euclidean SGD for the rest of the model).

A Grassmann leaf S [..., d, k] (d >= k, orthonormal columns S^H S = I_k, one subspace per leading index) with
Euclidean gradient D is updated by

    G = (I - S S^H) D                        tangent projection (the Riemannian gradient)
    M <- mu M + G                            momentum
    S' = qf(S - lr M)                        QR retraction (Q factor with diag(R) >= 0, so S' -> S as lr -> 0)
    M <- (I - S' S'^H) M                     momentum transport to the new tangent space (projection)

and the returned update is S' - S (so `optax.apply_updates` lands on S'). Leaves outside `grassmann_mask` get
Euclidean SGD with the same momentum (M <- mu M + D, update -lr M), so one transform trains a whole model.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import optax

from jaxlib_methods import validation
from jaxlib_methods.optim import _contracts

RIEMANNIAN_SGD_GRASSMANN_STATIC_ARGS = ("grassmann_mask",)
_CONSTANT = "RIEMANNIAN_SGD_GRASSMANN_STATIC_ARGS"


class RiemannianSGDState(NamedTuple):
  """State of `riemannian_sgd_grassmann`: int32 `count` and the momentum `trace` (a tree mirroring the params,
  tangent to the Grassmann leaves).

  Wang et al., "Get the Best of Both Worlds: Improving Accuracy and Transferability by Grassmann Class Representation",
  ICCV 2023, arXiv:2308.01547 (Sec. 3).

  count: int32 scalar; trace: a tree like the params ([..., d, k] at Grassmann leaves).
  """
  count: jax.Array
  trace: Any


def _mh(x):
  return jnp.conj(jnp.swapaxes(x, -1, -2))


def qr_retraction(x: jax.Array) -> jax.Array:
  """The Q factor of the thin QR of x [..., d, k] with diag(R) made non-negative (a continuous retraction).

  Wang et al., "Get the Best of Both Worlds: Improving Accuracy and Transferability by Grassmann Class Representation",
  ICCV 2023, arXiv:2308.01547 (Sec. 3) (the QR retraction).

  Args:
    x: [..., d, k] with d >= k.

  Returns:
    Q [..., d, k] with Q^H Q = I_k and span(Q) = span(x).
  """
  q, r = jnp.linalg.qr(x, mode="reduced")
  d = jnp.diagonal(r, axis1=-2, axis2=-1)
  phase = jnp.where(jnp.abs(d) > 0, d / jnp.where(jnp.abs(d) > 0, jnp.abs(d), 1), 1).astype(q.dtype)
  return q * phase[..., None, :]


def grassmann_tangent(s: jax.Array, g: jax.Array) -> jax.Array:
  """(I - S S^H) G: the projection of G onto the tangent space of the Grassmannian at S (both [..., d, k]).

  Wang et al., "Get the Best of Both Worlds: Improving Accuracy and Transferability by Grassmann Class Representation",
  ICCV 2023, arXiv:2308.01547 (Sec. 3). Returns [..., d, k].
  """
  return g - s @ (_mh(s) @ g)


def _check_grassmann_leaf(path: str, x: jax.Array) -> None:
  if x.ndim < 2 or x.shape[-2] < x.shape[-1]:
    raise ValueError(f"riemannian_sgd_grassmann: leaf {path} with shape {x.shape} is not a Grassmann point "
                     "[..., d, k] with d >= k; leave it out of grassmann_mask (it then gets Euclidean SGD)")


@_contracts.nan_on_invalid_injected
def riemannian_sgd_grassmann(learning_rate: optax.ScalarOrSchedule, momentum: float = 0.9, *,
                             grassmann_mask: Optional[Union[Any, Callable[[Any], Any]]] = None
                             ) -> optax.GradientTransformation:
  """Riemannian SGD with momentum on the Grassmannian (Wang, Li, Zhang 2023, arXiv:2308.01547, Sec. 3).

  G = (I - S S^H) D; M <- momentum M + G; S' = qf(S - learning_rate M); M <- (I - S' S'^H) M; update = S' - S.
  Leaves outside `grassmann_mask`: M <- momentum M + D, update = -learning_rate M (SGD with heavy-ball momentum).

  Args:
    learning_rate: scalar or schedule (>= 0).
    momentum: mu in [0, 1).
    grassmann_mask: which leaves are Grassmann points [..., d, k] (d >= k, orthonormal columns): None (all of
      them), a pytree of bools like the params, or a callable params -> such a pytree. Static.

  Returns:
    An optax GradientTransformation; `update` requires `params`. The Grassmann leaves stay orthonormal to the
    precision of their dtype (float32: ||S^T S - I|| ~ 1e-7).

  Examples:
    >>> import jax, jax.numpy as jnp, optax
    >>> s = {"S": jnp.linalg.qr(jax.random.normal(jax.random.PRNGKey(0), (5, 2)))[0]}
    >>> tx = riemannian_sgd_grassmann(0.1)
    >>> u, _ = tx.update({"S": jnp.ones((5, 2))}, tx.init(s), s)
    >>> s2 = optax.apply_updates(s, u)["S"]
    >>> bool(jnp.allclose(s2.T @ s2, jnp.eye(2), atol=1e-6))
    True

  References:
    Haoqi Wang, Zhizhong Li, Wayne Zhang. "Get the Best of Both Worlds: Improving Accuracy and Transferability by
    Grassmann Class Representation". ICCV 2023. arXiv:2308.01547.
  """
  validation.check_learning_rate(learning_rate)
  validation.check_in_interval(momentum, "momentum", 0.0, 1.0, closed_high=False)
  grassmann_mask = _contracts.static_choice(grassmann_mask, "grassmann_mask", _CONSTANT)

  def _mask(params):
    if grassmann_mask is None:
      return jax.tree.map(lambda _: True, params)
    m = grassmann_mask(params) if callable(grassmann_mask) else grassmann_mask
    _contracts.check_same_tree(m, params, "riemannian_sgd_grassmann", what="the params (grassmann_mask)")
    return m

  def _check(params):
    mask = _mask(params)
    for (path, x), is_g in zip(jax.tree_util.tree_flatten_with_path(params)[0], jax.tree.leaves(mask)):
      if bool(is_g):
        _check_grassmann_leaf(jax.tree_util.keystr(path), x)
    return mask

  def init_fn(params):
    _contracts.check_inexact_leaves(params, "riemannian_sgd_grassmann")
    _check(params)
    return RiemannianSGDState(count=jnp.zeros([], jnp.int32), trace=jax.tree.map(jnp.zeros_like, params))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("riemannian_sgd_grassmann needs the parameters: call update(updates, state, params)")
    _contracts.check_same_tree(updates, params, "riemannian_sgd_grassmann", what="the params")
    _contracts.check_inexact_leaves(updates, "riemannian_sgd_grassmann", what="gradients")
    mask = _check(params)
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate

    def leaf(g, s, m, is_g):
      ct = jnp.promote_types(s.dtype, jnp.float32)
      gf, sf, mf = g.astype(ct), s.astype(ct), m.astype(ct)
      if not is_g:
        m_new = momentum * mf + gf
        return (-lr * m_new).astype(s.dtype), m_new.astype(m.dtype)
      # S^H G contracts the d axis and QR needs whole columns. In explicit-sharding mode a sharded leaf is gathered
      # (replicated) for the Grassmann step and the update and momentum go back to the parameter's sharding; under
      # an automatic mesh XLA's partitioner does both and keeps the momentum sharded like the parameter.
      spec = _contracts.param_spec(s) if _contracts.is_explicit(s) else None
      if spec is not None:
        gf, sf, mf = _contracts.replicated(gf), _contracts.replicated(sf), _contracts.replicated(mf)
      m_new = momentum * mf + grassmann_tangent(sf, gf)
      s_new = qr_retraction(sf - lr * m_new)
      m_new = grassmann_tangent(s_new, m_new)
      return (_contracts.reshard_like((s_new - sf).astype(s.dtype), spec, s),
              _contracts.reshard_like(m_new.astype(m.dtype), spec, s))

    flat_g, treedef = jax.tree.flatten(updates)
    out = [leaf(g, s, m, bool(b)) for g, s, m, b in zip(flat_g, jax.tree.leaves(params),
                                                         jax.tree.leaves(state.trace), jax.tree.leaves(mask))]
    new_updates = jax.tree.unflatten(treedef, [u for u, _ in out])
    new_trace = jax.tree.unflatten(treedef, [m for _, m in out])
    return new_updates, RiemannianSGDState(count=optax.safe_increment(state.count), trace=new_trace)

  return optax.GradientTransformation(init_fn, update_fn)


riemannian_sgd_grassmann.STATIC_ARGS = RIEMANNIAN_SGD_GRASSMANN_STATIC_ARGS
