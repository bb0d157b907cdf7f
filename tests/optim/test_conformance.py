"""Conformance: every transform of `jaxlib_methods.optim` through optax's own contracts, from one table.

In the spirit of optax 0.2.8's `contrib/_common_test.py` (one parametrised table, the same checks for every
optimizer), `_src/alias_test.py` (dtype preservation, `inject_hyperparams` equals unwrapped, abstract init) and
`_src/sharding_test.py` (init and update state types equal under explicit sharding). Each `Case` runs through:

- `optax.tree.map_params` (with and without extra param-shaped trees; optax's way to derive state shardings);
- dtype stability from `init` to `update` for float32 / bfloat16 / float64 / complex64 params (or a clear error
  where a dtype is unsupported), updates in the params' dtype, and no recompile at step 2;
- odd leaves (0-size, scalar, 1-D, 3-D), integer leaves (TypeError naming the leaf), a gradient tree that does not
  match the params (ValueError naming the leaf);
- `optax.inject_hyperparams` with the exported static names: equals the unwrapped transform, and changing the injected
  hyperparameters between steps never retraces; a shape-setting name left out raises `StaticArgumentError`;
- `optax.MultiSteps`, `jax.vmap` over independent problems, `jax.eval_shape` / `ShapeDtypeStruct` init;
- an orbax save / restore after a projector refresh that continues bit for bit;
- Explicit and Auto sharding on 8 simulated CPU devices (a subprocess, `MULTI_DEVICE_SCRIPT`): init and update
  state shardings equal (so a jitted step is not recompiled at step 2); in explicit mode the updates are sharded
  like their params, and GaLore's low-rank moments keep their parameter's sharding along the axis they share.

`sso` is not in the table: it is not a GradientTransformation but a step(params, state, model_fn, target_loss_fn)
wrapper around any optax transform (tests/optim/test_target_surrogates.py checks its orbax round trip and an injected
inner). To add a transform: append a `Case` to `CASES` (a factory, small kwargs, its exported static names, the numeric
hyperparameters to inject, and what it supports). Cases with `heavy=True` run their compile-heavy contracts only
under `pytest -m slow`; every contract runs in the default suite for the light cases, so each contract and each
transform family is exercised by default.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import textwrap
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods import optim as O


@dataclasses.dataclass(frozen=True)
class Case:
  name: str
  factory: Callable[..., optax.GradientTransformation]
  kwargs: dict
  static_args: tuple = ()
  inject: dict = dataclasses.field(default_factory=dict)  # name -> 3 values, one per step (no retrace)
  needs_params: bool = False
  complex_ok: bool = True
  static_required: bool = False  # injecting without static_args must raise StaticArgumentError
  auto_sharding: bool = True  # init/update shardings equal under automatic sharding too (see its reason if False)
  heavy: bool = False  # compile-heavy: its jit/vmap/orbax/multistep contracts run under -m slow only

  def make(self, **overrides) -> optax.GradientTransformation:
    return self.factory(**{**self.kwargs, **overrides})


def _k_case(k: str, heavy: bool) -> Case:
  return Case(f"lion_k[{k}]", O.lion_k, dict(learning_rate=0.05, grad_K=k, weight_decay=0.1),
              O.LION_K_STATIC_ARGS, inject=dict(learning_rate=(0.05, 0.02, 0.01), b1=(0.9, 0.8, 0.7)), heavy=heavy)


def _orthograd_sgd(learning_rate=0.1, *, renormalize=True):
  """The ⊥Grad wrapper around a base optimizer (here optax.sgd)."""
  return O.orthograd(optax.sgd(learning_rate), renormalize=renormalize)


def _gaqat_sgd(learning_rate=0.1, threshold=0.3):
  """GAQAT's scale freezing (the 0-D and 1-D leaves as quantiser scales) before SGD. Its update needs `task_grads`;
  this wrapper derives them from the gradient (0.5 - g), so the sign conflicts vary with the gradient."""
  tx = optax.chain(O.scale_by_gaqat_freeze(threshold, scale_mask=lambda p: jax.tree.map(lambda x: x.ndim <= 1, p)),
                   optax.sgd(learning_rate))

  def update(updates, state, params=None):
    task = jax.tree.map(lambda g: (0.5 - g).astype(g.dtype), updates)
    return tx.update(updates, state, params, task_grads=task)

  return optax.GradientTransformation(tx.init, update)


GALORE_KW = dict(rank=2, update_gap=2)
CASES = [
    Case("galore", O.galore, dict(learning_rate=0.1, **GALORE_KW), O.GALORE_STATIC_ARGS,
         inject=dict(learning_rate=(0.1, 0.05, 0.02), update_gap=(2, 3, 1), scale=(0.25, 0.5, 1.0)),
         static_required=True),
    Case("scale_by_galore", O.scale_by_galore, dict(GALORE_KW, reshape="slices"), O.SCALE_BY_GALORE_STATIC_ARGS,
         inject=dict(update_gap=(2, 1, 2), scale=(0.25, 1.0, 0.5)), static_required=True, heavy=True),
    Case("galore[randomized_svd,reverse_std,stagger]", O.galore,
         dict(learning_rate=0.1, projector="randomized_svd", side="reverse_std", stagger=True, **GALORE_KW),
         O.GALORE_STATIC_ARGS, inject=dict(seed=(0, 1, 2)), static_required=True, heavy=True),
    Case("q_galore", O.q_galore, dict(learning_rate=0.1, group_size=4, **GALORE_KW), O.Q_GALORE_STATIC_ARGS,
         inject=dict(learning_rate=(0.1, 0.05, 0.02), cos_threshold=(0.4, 0.9, -0.5), gamma=(2.0, 3.0, 1.5)),
         static_required=True),
    Case("scale_by_q_galore[slices]", O.scale_by_q_galore, dict(group_size=4, reshape="slices", **GALORE_KW),
         O.SCALE_BY_Q_GALORE_STATIC_ARGS, inject=dict(scale=(0.25, 0.5, 1.0)), static_required=True, heavy=True),
    # The 8-bit codes are flattened into blocks: under automatic sharding XLA's propagation may replicate them (a
    # layout choice of jit), so their init/update shardings agree only in explicit mode.
    Case("q_galore[adam_8bit]", O.q_galore,
         dict(learning_rate=0.1, group_size=4, inner=O.scale_by_adam_8bit(block_size=4, min_8bit_size=0),
              **GALORE_KW), O.Q_GALORE_STATIC_ARGS, complex_ok=False, static_required=True, auto_sharding=False,
         heavy=True),
    Case("frugal", O.frugal, dict(learning_rate=0.1, rho=0.5, update_gap=2), O.FRUGAL_STATIC_ARGS,
         inject=dict(learning_rate=(0.1, 0.05, 0.02), update_gap=(2, 3, 1), state_free_scale=(1.0, 0.1, 0.5)),
         static_required=True),
    Case("frugal[blocks]", O.frugal, dict(learning_rate=0.1, rho=0.5, update_gap=2, projector="blocks"),
         O.FRUGAL_STATIC_ARGS, inject=dict(scale=(1.0, 0.5, 0.25)), static_required=True),
    Case("frugal[svd,reshape]", O.frugal, dict(learning_rate=0.1, rho=0.5, update_gap=2, projector="svd", reshape=1),
         O.FRUGAL_STATIC_ARGS, static_required=True, heavy=True),
    Case("frugal[rows,rho=0]", O.frugal, dict(learning_rate=0.1, rho=0.0, update_gap=2, projector="rows"),
         O.FRUGAL_STATIC_ARGS, static_required=True),  # rho = 0: no inner state, still saved by orbax
    Case("scale_by_frugal[randk]", O.scale_by_frugal, dict(rho=0.5, update_gap=2, projector="randk"),
         O.SCALE_BY_FRUGAL_STATIC_ARGS, static_required=True, heavy=True),
    *[_k_case(k, heavy=k != "linf") for k in O.K_NAMES],
    Case("scale_by_lion_k", O.scale_by_lion_k, dict(grad_K="lp"), O.SCALE_BY_LION_K_STATIC_ARGS,
         inject=dict(b2=(0.99, 0.9, 0.5)), heavy=True),
    Case("orthogonal_adamw", O.orthogonal_adamw, dict(learning_rate=0.05, weight_decay=0.01),
         O.ORTHOGONAL_ADAMW_STATIC_ARGS, inject=dict(learning_rate=(0.05, 0.01, 0.02), b1=(0.9, 0.5, 0.7)),
         needs_params=True),
    Case("scale_by_orthograd", O.scale_by_orthograd, dict(renormalize=False), inject=dict(eps=(1e-30, 1e-20, 0.0)),
         needs_params=True, heavy=True),
    Case("orthograd(sgd)", _orthograd_sgd, {}, inject=dict(learning_rate=(0.1, 0.05, 0.2)), needs_params=True,
         heavy=True),
    Case("scale_by_adam_8bit", O.scale_by_adam_8bit, dict(block_size=4, min_8bit_size=0),
         O.SCALE_BY_ADAM_8BIT_STATIC_ARGS, inject=dict(b1=(0.9, 0.8, 0.5), eps=(1e-8, 1e-6, 1e-3)),
         complex_ok=False, static_required=True, auto_sharding=False),
    Case("scale_by_adam_hf", O.scale_by_adam_hf, {}, inject=dict(b2=(0.999, 0.99, 0.9)), heavy=True),
    # Issue 16 wave 2, P1 ([209] optimistic OMD: projection on a ball and the self-confident step size).
    Case("optimistic_omd", O.optimistic_omd, dict(learning_rate=0.1, radius=10.0, diameter=2.0),
         O.OPTIMISTIC_OMD_STATIC_ARGS, inject=dict(learning_rate=(0.1, 0.05, 0.02), radius=(10.0, 5.0, 20.0)),
         needs_params=True),
    # ---- issue 16 P2: cSGLD [106], dynamic sparse training [140] (GAQAT's freeze needs task_grads: test_gaqat) ----
    Case("csgld", O.csgld, dict(learning_rate=0.1, total_steps=8, num_cycles=2, data_size=10, weight_decay=0.01,
                                exploration_ratio=0.5),   # P = 4: steps 2, 3 of each cycle sample (the noise path)
         O.CSGLD_STATIC_ARGS, inject=dict(learning_rate=(0.1, 0.05, 0.02), temperature=(1.0, 0.5, 0.0)),
         needs_params=True, complex_ok=False, heavy=True),
    Case("scale_by_langevin", O.scale_by_langevin, dict(step_size=0.1, data_size=10), O.SCALE_BY_LANGEVIN_STATIC_ARGS,
         inject=dict(step_size=(0.1, 0.05, 0.2), temperature=(1.0, 0.1, 0.0)), complex_ok=False, heavy=True),
    Case("dynamic_sparse(sgd)", O.dynamic_sparse, dict(inner=optax.sgd(0.1), sparsity=0.5, update_interval=2,
                                                       end_step=8), O.DYNAMIC_SPARSE_STATIC_ARGS,
         inject=dict(drop_fraction=(0.3, 0.1, 0.5)), needs_params=True, static_required=True, heavy=True),
    # [74] GAQAT's scale freezing (its update takes task_grads: see _gaqat_sgd).
    Case("scale_by_gaqat_freeze(sgd)", _gaqat_sgd, dict(learning_rate=0.1, threshold=0.3),
         inject=dict(learning_rate=(0.1, 0.05, 0.02), threshold=(0.3, 0.6, 0.1)), complex_ok=False),
    # ---- layers1 (issue 18): [97] GCR's Riemannian SGD (Grassmann leaves: matrices with d >= k; others Euclidean) ----
    Case("riemannian_sgd_grassmann", O.riemannian_sgd_grassmann,
         dict(learning_rate=0.1, grassmann_mask=lambda p: jax.tree.map(lambda x: x.ndim >= 2 and 0 < x.shape[-1]
                                                                       <= x.shape[-2], p)),
         O.RIEMANNIAN_SGD_GRASSMANN_STATIC_ARGS, inject=dict(learning_rate=(0.1, 0.05, 0.02), momentum=(0.9, 0.5, 0.0)),
         needs_params=True),
]
# ---- scale-out (issue 12): FedHyper [57]'s hypergradient rates (an injected lr_0 shifts the adapted rate) ----
CASES += [
    Case("scale_by_hypergradient_lr", O.scale_by_hypergradient_lr, dict(learning_rate=0.1, beta=0.01),
         O.SCALE_BY_HYPERGRADIENT_LR_STATIC_ARGS, inject=dict(learning_rate=(0.1, 0.2, 0.05), beta=(0.01, 0.0, 0.1))),
    Case("fedhyper_global", O.fedhyper_global, dict(learning_rate=1.0, beta=0.5), O.FEDHYPER_GLOBAL_STATIC_ARGS,
         inject=dict(learning_rate=(1.0, 2.0, 0.5), beta=(0.5, 1.0, 0.0)), heavy=True),
    Case("scale_by_fedhyper_client", O.scale_by_fedhyper_client, dict(learning_rate=0.1, beta=0.01, num_clients=2),
         O.SCALE_BY_FEDHYPER_CLIENT_STATIC_ARGS, inject=dict(beta=(0.01, 0.1, 0.0)), static_required=True, heavy=True),
]
BY_NAME = {c.name: c for c in CASES}
ALL = [pytest.param(c, id=c.name) for c in CASES]
HEAVY_SLOW = [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.heavy else []) for c in CASES]


# ----------------------------------------------------------------------------------------------------------------------
# Small problems.
# ----------------------------------------------------------------------------------------------------------------------

def _array(rng, shape, dtype):
  x = rng.normal(size=shape)
  if jnp.issubdtype(dtype, jnp.complexfloating):
    x = x + 1j * rng.normal(size=shape)
  return jnp.asarray(x, dtype)


def _params(dtype=jnp.float32, seed=0, odd=False):
  """w [6, 4] and v [3, 5] (both sides of the projectors), t [2, 3, 4] (3-D), b [4]; `odd` adds a scalar and 0-size
  leaves."""
  rng = np.random.default_rng(seed)
  p = {"w": _array(rng, (6, 4), dtype), "v": _array(rng, (3, 5), dtype), "t": _array(rng, (2, 3, 4), dtype),
       "b": _array(rng, (4,), dtype)}
  if odd:
    p.update(s=_array(rng, (), dtype), e=jnp.zeros((0, 5), dtype), e1=jnp.zeros((0,), dtype))
  return p


def _grads(params, t):
  return jax.tree.map(lambda p: (jnp.sin(p * (1.0 + 0.3 * t)) + 0.1).astype(p.dtype), params)


def _types(tree):
  return [(tuple(x.shape), jnp.dtype(x.dtype)) for x in jax.tree.leaves(tree)]


def _counting_jit(update):
  """`jax.jit(update)` and a list that grows by one each time jax traces it: a second trace means a new argument
  signature, i.e. the state's types changed (a recompile). `PjitFunction._cache_size()` cannot say this: it reads 0
  once the process-wide C++ jit cache (8192 entries) is full, which one process running the whole suite reaches."""
  traces = []

  def traced(*args):
    traces.append(None)
    return update(*args)

  return jax.jit(traced), traces


def _run(tx, params, steps, state=None, start=0, jit=True, step=None):
  state = tx.init(params) if state is None else state
  if step is None:  # (pass `step` to reuse a jitted update and its compilation)
    step = jax.jit(tx.update) if jit else tx.update
  for t in range(start, start + steps):
    u, state = step(_grads(params, t), state, params)
    params = optax.apply_updates(params, u)
  return params, state


def _assert_trees_close(a, b, **kw):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x, np.float64 if not np.iscomplexobj(x) else np.complex128),
                               np.asarray(y, np.float64 if not np.iscomplexobj(y) else np.complex128), **kw)


def _assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ----------------------------------------------------------------------------------------------------------------------
# The contracts.
# ----------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ALL)
def test_map_params(case):
  params = _params(odd=True)
  tx = case.make()
  state = tx.init(params)
  same = optax.tree.map_params(tx, lambda x: x, state)
  _assert_trees_equal(same, state)
  # optax's recipe for state shardings: one spec per param, mapped onto every params-shaped subtree of the state.
  specs = jax.tree.map(lambda _: "PARAM_SPEC", params)
  mapped = optax.tree.map_params(tx, lambda _, spec: spec, state, specs, transform_non_params=lambda _: "OTHER")
  flat = jax.tree.leaves(mapped)
  assert len(flat) == len(jax.tree.leaves(state)) and set(flat) <= {"PARAM_SPEC", "OTHER"}


@pytest.mark.parametrize("case", HEAVY_SLOW)
def test_core_contracts_float32_odd_leaves_orbax(case, tmp_path):
  """One jitted update, reused: stable state types and no recompile over 5 steps, updates in the params' dtype and
  shape (0-size, scalar, 1-D, 3-D leaves included), an orbax save / restore after the step-2 refresh that continues
  bit for bit, integer leaves and mismatched gradient trees rejected with the leaf named."""
  ocp = pytest.importorskip("orbax.checkpoint")
  params = {k: v for k, v in _params(odd=True).items() if v.size}  # 0-size leaves: see test_zero_size_leaves
  tx = case.make()
  step, traces = _counting_jit(tx.update)
  s0 = tx.init(params)
  # Committed to the device, as orbax's restored arrays are: with uncommitted inputs before the checkpoint and
  # committed ones after, jit would compile the same update a second time for the resumed steps.
  params, s0 = jax.device_put((params, s0), jax.devices()[0])
  p, s, states = params, s0, []
  for t in range(5):
    u, s = step(_grads(p, t), s, p)
    for q, x in zip(jax.tree.leaves(p), jax.tree.leaves(u)):
      assert x.dtype == q.dtype and x.shape == q.shape and np.all(np.isfinite(np.asarray(x)))
    p = optax.apply_updates(p, u)
    states.append((p, s))
    assert _types(s) == _types(s0)
  assert len(traces) == 1  # the state's types never changed: no retrace, no recompile
  # orbax after 3 steps (steps 0 and 2 refreshed the projectors: update_gap = 2), then 2 more steps.
  p_mid, s_mid = states[2]
  ckpt = {"params": p_mid, "opt": s_mid}
  ckptr = ocp.StandardCheckpointer()
  ckptr.save(tmp_path / "ckpt", ckpt)
  ckptr.wait_until_finished()
  restored = ckptr.restore(tmp_path / "ckpt", jax.eval_shape(lambda: ckpt))
  ckptr.close()
  _assert_trees_equal(restored["opt"], s_mid)
  p_res, s_res = restored["params"], restored["opt"]
  for t in range(3, 5):
    u, s_res = step(_grads(p_res, t), s_res, p_res)
    p_res = optax.apply_updates(p_res, u)
  _assert_trees_equal(p_res, states[4][0])
  _assert_trees_equal(s_res, states[4][1])
  # Bad input, named.
  with pytest.raises(TypeError, match=r"leaf \['ids'\].*int32"):
    tx.init({**params, "ids": jnp.zeros((3, 2), jnp.int32)})
  bad = {k: v for k, v in _grads(params, 0).items() if k != "v"}
  with pytest.raises(ValueError, match=r"\['v'\]"):
    tx.update(bad, s0, params)


@pytest.mark.parametrize("case", HEAVY_SLOW)
def test_zero_size_leaves(case):
  """0-size leaves pass through (their state is 0-size as in optax; orbax cannot save such params either)."""
  params = {"e": jnp.zeros((0, 5)), "e1": jnp.zeros((0,)), "w": jnp.ones((3, 2))}
  tx = case.make()
  s0 = tx.init(params)
  u, s1 = jax.jit(tx.update)(_grads(params, 0), s0, params)
  assert _types(s0) == _types(s1)
  assert [x.shape for x in jax.tree.leaves(u)] == [x.shape for x in jax.tree.leaves(params)]
  assert np.all(np.isfinite(np.asarray(u["w"])))


OTHER_DTYPES_DEFAULT = ("frugal", "lion_k[linf]")


@pytest.mark.parametrize("dtype", ["bfloat16", "float64", "complex64"])
@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=[] if c.name in OTHER_DTYPES_DEFAULT else
                                               [pytest.mark.slow]) for c in CASES])
def test_dtype_stable_from_init_to_update(case, dtype):
  dtype = jnp.dtype(dtype)
  ctx = jax.enable_x64(True) if dtype == jnp.float64 else contextlib.nullcontext()
  with ctx:
    params = _params(dtype)
    tx = case.make()
    if jnp.issubdtype(dtype, jnp.complexfloating) and not case.complex_ok:
      with pytest.raises(TypeError, match=r"leaf \['.*'\].*complex"):
        tx.init(params)
      return
    s0 = tx.init(params)
    step, traces = _counting_jit(tx.update)
    u, s1 = step(_grads(params, 0), s0, params)
    u, s2 = step(_grads(params, 1), s1, params)
    assert _types(s0) == _types(s1) == _types(s2)
    assert len(traces) == 1  # no retrace (recompile) at step 2
    for p, x in zip(jax.tree.leaves(params), jax.tree.leaves(u)):
      assert x.dtype == p.dtype and x.shape == p.shape
      assert np.all(np.isfinite(np.asarray(x, np.complex128 if np.iscomplexobj(x) else np.float64)))


# galore / q_galore / frugal under inject_hyperparams and MultiSteps are also in test_low_memory_composability.py.
INJECT_DEFAULT = ("lion_k[l1]", "orthogonal_adamw")
MULTISTEP_VMAP_DEFAULT = ("lion_k[linf]", "orthogonal_adamw")


def _default_only(names):
  return [pytest.param(c, id=c.name, marks=[] if c.name in names else [pytest.mark.slow]) for c in CASES]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES if c.static_required])
def test_inject_without_the_static_names_raises_one_error_type(case):
  params = _params()
  with pytest.raises(O.StaticArgumentError, match="static_args"):
    optax.inject_hyperparams(case.factory)(**case.kwargs).init(params)


@pytest.mark.parametrize("case", _default_only(INJECT_DEFAULT))
def test_inject_hyperparams_equals_unwrapped_and_never_retraces(case):
  params = _params()
  inj = optax.inject_hyperparams(case.factory, static_args=case.static_args)(**case.kwargs)
  plain = case.make()
  step, traces = _counting_jit(inj.update)  # one compiled update serves both checks
  p_inj, _ = _run(inj, params, 3, step=step)
  p_plain, _ = _run(plain, params, 3)
  _assert_trees_close(p_inj, p_plain, rtol=1e-5, atol=1e-6)

  p, s = params, inj.init(params)
  for t in range(3):
    for name, values in case.inject.items():
      # As a user would set them: optax's init leaves an int hyperparameter a Python int (weak-typed int32 once
      # through jit), and a float one a float32 array; a strongly typed int32 would be a new jit signature for any
      # optax transform, ours or optax's.
      old = s.hyperparams[name]
      s.hyperparams[name] = jnp.asarray(values[t]) if old.weak_type else jnp.asarray(values[t], old.dtype)
    u, s = step(_grads(p, t), s, p)
    p = optax.apply_updates(p, u)
  assert len(traces) == 1  # 6 calls, the last 3 with changed hyperparameters: traced (compiled) once
  assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(p))


# Candidate out-of-range values of injectable hyperparameters. Which of them are invalid is the transform's own
# verdict: a value its eager constructor rejects (ValueError) must, injected inside jit, give NaN updates.
OUT_OF_RANGE = {"learning_rate": (-0.1,), "b1": (-0.1, 1.5), "b2": (-0.1, 1.5), "momentum": (-0.1, 1.5),
                "eps": (-1.0,), "scale": (-1.0,), "state_free_scale": (-1.0,), "cos_threshold": (-1.5, 1.5),
                "gamma": (0.5, -1.0), "radius": (-1.0,), "temperature": (-1.0,), "step_size": (-0.1,),
                "drop_fraction": (-0.1, 1.5), "threshold": (-0.1, 1.5), "beta": (-0.1,), "update_gap": (0,)}


def _rejected_eagerly(case, name, value):
  try:
    case.make(**{name: value})
  except ValueError:
    return True
  return False


def _out_of_range_params():
  out = []
  for c in CASES:
    triples = [(name, v) for name in c.inject for v in OUT_OF_RANGE.get(name, ()) if _rejected_eagerly(c, name, v)]
    for i, (name, v) in enumerate(triples):
      marks = [pytest.mark.slow] if c.heavy or i > 0 else []   # the default suite: one value of each light case
      out.append(pytest.param(c, name, v, id=f"{c.name}-{name}={v}", marks=marks))
  return out


OUT_OF_RANGE_PARAMS = _out_of_range_params()


def test_the_out_of_range_table_reaches_every_transform_family():
  """Guards the test below against testing nothing: most cases have an injectable hyperparameter with a range."""
  covered = {p.values[0].name for p in OUT_OF_RANGE_PARAMS}
  assert len(covered) >= 25 and {"galore", "q_galore", "frugal", "lion_k[l1]", "orthogonal_adamw"} <= covered


@pytest.mark.parametrize("case,name,value", OUT_OF_RANGE_PARAMS)
def test_an_injected_out_of_range_hyperparameter_gives_nan_updates(case, name, value):
  """docs/conventions.md 5 for optimizers: the value the constructor rejects eagerly (ValueError), injected by
  `optax.inject_hyperparams` and traced under jit, makes the step's updates NaN (not a plausible wrong step), from
  the same compiled step as the valid value before it (no retrace)."""
  params = _params()
  inj = optax.inject_hyperparams(case.factory, static_args=case.static_args)(**case.kwargs)
  step, traces = _counting_jit(inj.update)
  state = inj.init(params)
  good = state.hyperparams[name]
  for t, v in enumerate((good, value)):
    state.hyperparams[name] = jnp.asarray(v) if good.weak_type else jnp.asarray(v, good.dtype)
    u, state = step(_grads(params, t), state, params)
    leaves = [np.asarray(x) for x in jax.tree.leaves(u) if np.size(x)]
    if t == 0:
      assert all(np.all(np.isfinite(x)) for x in leaves), (case.name, name)
    else:
      assert all(np.all(np.isnan(x)) for x in leaves), f"{case.name}: {name}={value} injected gave finite updates"
  assert len(traces) == 1


@pytest.mark.parametrize("case", _default_only(MULTISTEP_VMAP_DEFAULT))
def test_multisteps_of_identical_micro_batches_equals_one_step(case):
  params = _params()
  k = 2
  ms = optax.MultiSteps(case.make(), every_k_schedule=k)
  tx = case.make()
  pa, sa = params, ms.init(params)
  pb, sb = params, tx.init(params)
  ms_step, tx_step = jax.jit(ms.update), jax.jit(tx.update)
  for t in range(3):
    g = _grads(pb, t)
    for _ in range(k):
      u, sa = ms_step(g, sa, pa)
      pa = optax.apply_updates(pa, u)
    u, sb = tx_step(g, sb, pb)
    pb = optax.apply_updates(pb, u)
  _assert_trees_close(pa, pb, rtol=1e-5, atol=1e-6)
  assert int(sa.gradient_step) == 3


@pytest.mark.parametrize("case", _default_only(MULTISTEP_VMAP_DEFAULT))
def test_vmap_over_independent_problems_equals_one_by_one(case):
  tx = case.make()
  ps = [_params(seed=i) for i in range(2)]
  batched = jax.tree.map(lambda *x: jnp.stack(x), *ps)
  gs = jax.tree.map(lambda *x: jnp.stack(x), *[_grads(p, 0) for p in ps])
  vs = jax.vmap(tx.init)(batched)
  vu, _ = jax.jit(jax.vmap(tx.update))(gs, vs, batched)
  for i, p in enumerate(ps):
    u, _ = jax.jit(tx.update)(_grads(p, 0), tx.init(p), p)
    _assert_trees_close(jax.tree.map(lambda x: x[i], vu), u, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("case", ALL)
def test_abstract_init(case):
  params = _params(odd=True)
  tx = case.make()
  real = tx.init(params)
  shapes = jax.eval_shape(tx.init, params)
  assert jax.tree.structure(shapes) == jax.tree.structure(real) and _types(shapes) == _types(real)
  abstract = tx.init(jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params))
  assert jax.tree.structure(abstract) == jax.tree.structure(real) and _types(abstract) == _types(real)


# ----------------------------------------------------------------------------------------------------------------------
# Sharding on 8 simulated devices (a subprocess: the device count is fixed when jax starts).
# ----------------------------------------------------------------------------------------------------------------------

MULTI_DEVICE_SCRIPT = textwrap.dedent("""
    import importlib.util, sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
    spec = importlib.util.spec_from_file_location("conformance", sys.argv[1])
    conf = importlib.util.module_from_spec(spec)
    sys.modules["conformance"] = conf
    spec.loader.exec_module(conf)
    assert len(jax.devices()) == 8
    names = sys.argv[2].split(";")
    pad = lambda s, nd: tuple(s) + (None,) * (nd - len(tuple(s)))
    kinds = lambda tree: [(x.shape, str(x.dtype), pad(x.sharding.spec, x.ndim)) for x in jax.tree.leaves(tree)]
    shapes = {"w": (16, 8), "v": (8, 16), "t": (2, 16, 4), "b": (16,), "s": ()}
    specs = {"w": P("x", None), "v": P(None, "x"), "t": P(None, "x", None), "b": P("x"), "s": P()}
    for mode in ("explicit", "auto"):
      mesh = jax.make_mesh((8,), ("x",), axis_types=(AxisType.Explicit if mode == "explicit" else AxisType.Auto,))
      with jax.set_mesh(mesh):
        rng = np.random.default_rng(0)
        params = {k: jax.device_put(jnp.asarray(rng.normal(size=shapes[k]), jnp.float32), NamedSharding(mesh, specs[k]))
                  for k in shapes}
        grads = jax.tree.map(lambda p: 0.5 * p + 0.1, params)
        for name in names:
          case = conf.BY_NAME[name]
          if mode == "auto" and not case.auto_sharding:
            continue
          tx = case.make()
          s0 = tx.init(params)
          step = jax.jit(tx.update)
          _, s1 = step(grads, s0, params)
          u, s2 = step(grads, s1, params)
          assert kinds(s0) == kinds(s1) == kinds(s2), (mode, name, [(a, b) for a, b in zip(kinds(s0), kinds(s1))
                                                                  if a != b])
          if mode == "explicit":  # (under automatic sharding, jit places the updates as it sees fit)
            assert [pad(x.sharding.spec, x.ndim) for x in jax.tree.leaves(u)] == [
                pad(specs[k], len(shapes[k])) for k in sorted(shapes)], (mode, name)
          if mode == "explicit" and name in ("galore", "q_galore"):
            mu = jax.tree.leaves(s2, is_leaf=lambda x: hasattr(x, "mu"))
            inner = [x for x in mu if hasattr(x, "mu")][0].mu
            # w (16 x 8, rows sharded): moments 16 x r keep the row sharding; v (8 x 16, columns): r x 16 keep it.
            assert pad(inner["w"].sharding.spec, 2) == ("x", None), (name, inner["w"].sharding)
            assert pad(inner["v"].sharding.spec, 2) == (None, "x"), (name, inner["v"].sharding)
          print(mode, name, "ok", flush=True)
""")


def _run_multi_device(names):
  # The test session's flags (tests/conftest.py; level 0 from `fast_xla`: these small programs are compile-bound, one
  # process, 5 transforms: 21.9 s user CPU at XLA's default level, 22.2 at 1, 18.4 at 0) plus 8 devices.
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
                       " --xla_cpu_collective_call_terminate_timeout_seconds=600")
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  res = subprocess.run([sys.executable, "-c", MULTI_DEVICE_SCRIPT, os.path.abspath(__file__), ";".join(names)],
                       env=env, cwd=root, capture_output=True, text=True, timeout=900)
  assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-6000:]
  lines = [ln for ln in res.stdout.splitlines() if ln.endswith(" ok")]
  want = [f"{m} {n} ok" for m in ("explicit", "auto") for n in names if m == "explicit" or BY_NAME[n].auto_sharding]
  assert lines == want, res.stdout


DEFAULT_SHARDING = ["galore", "q_galore", "frugal", "lion_k[linf]", "orthogonal_adamw"]


def test_explicit_and_auto_sharding_on_8_devices(fast_xla):
  _run_multi_device(DEFAULT_SHARDING)


@pytest.mark.slow
def test_explicit_and_auto_sharding_on_8_devices_every_case(fast_xla):
  _run_multi_device([c.name for c in CASES if c.name not in DEFAULT_SHARDING])


# ----------------------------------------------------------------------------------------------------------------------
# Masks and callables under inject_hyperparams (issue 13).
# ----------------------------------------------------------------------------------------------------------------------

def test_callable_masks_work_under_inject_hyperparams_with_the_exported_static_names():
  params = _params()
  decay = lambda p: jax.tree.map(lambda x: x.ndim >= 2, p)
  for factory, kw in [(O.galore, dict(rank=2, projection_mask=O.paper_projection_mask, reshape=O.paper_reshape)),
                      (O.q_galore, dict(rank=2, group_size=4, projection_mask=O.paper_projection_mask)),
                      (O.frugal, dict(rho=0.5, split_mask=O.paper_projection_mask)),
                      (O.lion_k, dict(grad_K=O.grad_huber(0.5))), (O.orthogonal_adamw, {})]:
    tx = optax.inject_hyperparams(factory, static_args=factory.STATIC_ARGS)(learning_rate=0.1, mask=decay, **kw)
    p, _ = _run(tx, params, 2)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(p))
    # Without the static names, the callable is taken for a schedule: one clear error type.
    with pytest.raises(O.StaticArgumentError, match="static_args"):
      optax.inject_hyperparams(factory)(learning_rate=0.1, mask=decay, **kw).init(params)
