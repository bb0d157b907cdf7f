"""cSGLD: cyclical stochastic-gradient Langevin dynamics, as an optax schedule and transforms.

Paper [106] samples its surrogate weights with it: Martin Gubri, Maxime Cordy, Mike Papadakis, Yves Le Traon, Koushik
Sen, "Efficient and Transferable Adversarial Examples from Bayesian Neural Networks", UAI 2022, arXiv:2011.05074
(Sec. 3: cSGLD posterior samples as the surrogate of a transfer attack). The sampler is Ruqi Zhang, Chunyuan Li,
Jianyi Zhang, Changyou Chen, Andrew Gordon Wilson, "Cyclical Stochastic Gradient MCMC for Bayesian Deep Learning",
ICLR 2020, arXiv:1902.03932:

    alpha_k = alpha_0 / 2 * [cos(pi * mod(k - 1, ceil(K / M)) / ceil(K / M)) + 1]          (Zhang et al. eq. 1)
    theta_k = theta_{k-1} - alpha_k grad U(theta)                    exploration: r(k) < beta
    theta_k = theta_{k-1} - alpha_k grad U(theta) + sqrt(2 alpha_k) xi,   xi ~ N(0, I)      sampling: r(k) >= beta

with r(k) = mod(k - 1, ceil(K / M)) / ceil(K / M) the position in the cycle, K steps, M cycles, and U the negative
log posterior. Written for the gradient g of the *mean* loss over N training examples (U = N * mean loss, step
eta = alpha N) and a posterior tempered by T (exp(-U / T)), as the official cSG-MCMC code runs it:

    update = -eta_k g + 1[sampling] * sqrt(2 eta_k T / N) xi.

`scale_by_langevin` is that update for any step-size schedule (T = 0 is SGD exactly); `csgld` chains it with the
cyclical schedule (`cyclical_step_size`) and an optional Gaussian prior (weight decay, as the official scripts use).
Noise is drawn from `jax.random.fold_in(key(seed), count)`, so the state holds only the step count and a rerun or a
resumed run draws the same noise.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods import validation
from jaxlib_methods.optim import _contracts

CSGLD_STATIC_ARGS = ("mask",)
SCALE_BY_LANGEVIN_STATIC_ARGS = ("is_sampling",)


class ScaleByLangevinState(NamedTuple):
  """State of `scale_by_langevin`: the step count only (the noise key is derived from the seed and the count).

  Zhang et al., "Cyclical Stochastic Gradient MCMC for Bayesian Deep Learning", ICLR 2020, arXiv:1902.03932, the sampler
  of Gubri et al., "Efficient and Transferable Adversarial Examples from Bayesian Neural Networks", UAI 2022,
  arXiv:2011.05074 (Sec. 3).

  count: int32 scalar.
  """
  count: jax.Array  # int32 scalar


def _check_count_arg(x: Any, name: str) -> None:
  """An int >= 1 given eagerly (a traced value from inject_hyperparams passes unchecked)."""
  if isinstance(x, (bool, np.bool_)):
    raise TypeError(f"{name} must be an int >= 1, got {name}={x!r}")
  if isinstance(x, (int, np.integer)):
    if x < 1:
      raise ValueError(f"{name} must be an int >= 1, got {name}={x!r}")
    return
  if isinstance(x, (jax.Array, jax.core.Tracer, np.ndarray)):
    if not jnp.issubdtype(jnp.result_type(x), jnp.integer):
      raise TypeError(f"{name} must be an integer, got dtype {jnp.result_type(x)}")
    if not isinstance(x, jax.core.Tracer) and int(x) < 1:
      raise ValueError(f"{name} must be an int >= 1, got {name}={int(x)}")
    return
  raise TypeError(f"{name} must be an int >= 1, got {name}={x!r}")


def _check_cycles(total_steps: Any, num_cycles: Any) -> None:
  """M <= K when both are given eagerly: more cycles than steps would collapse P to 1 (a constant step size)."""
  if isinstance(total_steps, (int, np.integer)) and isinstance(num_cycles, (int, np.integer)) and (
      num_cycles > total_steps):
    raise ValueError(f"num_cycles={num_cycles} must not exceed total_steps={total_steps} (each cycle needs a step)")


def _cycle_length(total_steps, num_cycles):
  """ceil(K / M) (Zhang et al. eq. 1), as a jnp integer so injected values work."""
  k = jnp.asarray(total_steps, jnp.int32)
  m = jnp.asarray(num_cycles, jnp.int32)
  return jnp.maximum((k + m - 1) // m, 1)


def cyclical_step_size(init_value: float, total_steps: int, num_cycles: int) -> optax.Schedule:
  """The cyclical cosine step size of cSG-MCMC (Zhang et al. 2020, arXiv:1902.03932, eq. 1).

  alpha(t) = init_value / 2 * [cos(pi * mod(t, P) / P) + 1],  P = ceil(total_steps / num_cycles),
  for the 0-based step count t (the paper's k - 1): each of the `num_cycles` cycles restarts at `init_value` and
  anneals to ~0.

  Args:
    init_value: alpha_0 > 0, the step size at the start of each cycle.
    total_steps: K >= 1, the length of the run.
    num_cycles: M >= 1, the number of cycles.

  Returns:
    An optax schedule `count -> step size` (a float32 scalar).

  Examples:
    >>> s = cyclical_step_size(1.0, total_steps=8, num_cycles=2)
    >>> [round(float(s(t)), 3) for t in range(5)]
    [1.0, 0.854, 0.5, 0.146, 1.0]

  References:
    Zhang, Li, Zhang, Chen, Wilson. "Cyclical Stochastic Gradient MCMC for Bayesian Deep Learning". ICLR 2020.
    arXiv:1902.03932, eq. (1).
  """
  validation.check_positive(init_value, "init_value")
  _check_count_arg(total_steps, "total_steps")
  _check_count_arg(num_cycles, "num_cycles")
  _check_cycles(total_steps, num_cycles)

  def schedule(count):
    period = _cycle_length(total_steps, num_cycles)
    pos = jnp.mod(jnp.asarray(count, jnp.int32), period).astype(jnp.float32) / period.astype(jnp.float32)
    return jnp.asarray(init_value, jnp.float32) * 0.5 * (jnp.cos(jnp.pi * pos) + 1.0)

  return schedule


def csgld_is_sampling(total_steps: int, num_cycles: int, exploration_ratio: float) -> Callable[[Any], jax.Array]:
  """The sampling-stage indicator of cSG-MCMC: True where r(k) = mod(t, P) / P >= beta (Zhang et al. 2020, Alg. 1).

  Args:
    total_steps: K >= 1.
    num_cycles: M >= 1.
    exploration_ratio: beta in [0, 1]: the first fraction of each cycle is exploration (no noise); beta = 1 never
      samples.

  Returns:
    A function `count -> bool scalar` (True: add the Langevin noise at this step).

  References:
    Zhang, Li, Zhang, Chen, Wilson. "Cyclical Stochastic Gradient MCMC for Bayesian Deep Learning". ICLR 2020.
    arXiv:1902.03932, Algorithm 1.
  """
  _check_some_step_samples(total_steps, num_cycles, exploration_ratio)
  return _sampling_indicator(total_steps, num_cycles, exploration_ratio)


def _check_some_step_samples(total_steps: Any, num_cycles: Any, exploration_ratio: Any) -> None:
  """ValueError when beta < 1 but no position t / P of a cycle reaches it (a short cycle: no noise, ever)."""
  _check_count_arg(total_steps, "total_steps")
  _check_count_arg(num_cycles, "num_cycles")
  _check_cycles(total_steps, num_cycles)
  validation.check_in_interval(exploration_ratio, "exploration_ratio", 0.0, 1.0)
  if (isinstance(total_steps, (int, np.integer)) and isinstance(num_cycles, (int, np.integer))
      and validation.is_concrete_number(exploration_ratio) and float(exploration_ratio) < 1.0):
    period = max(-(-int(total_steps) // int(num_cycles)), 1)
    if np.float32(period - 1) / np.float32(period) < np.float32(exploration_ratio):
      raise ValueError(
          f"no step of a cycle would sample: the cycle length P = ceil(total_steps / num_cycles) = {period} has its "
          f"last position (P - 1) / P = {(period - 1) / period:.3g} below exploration_ratio={exploration_ratio}, so "
          f"no Langevin noise would ever be added; use P >= 1 / (1 - exploration_ratio) (fewer cycles or more steps) "
          f"or a smaller exploration_ratio (1.0 is the explicit 'never sample')")


def _sampling_indicator(total_steps: Any, num_cycles: Any, exploration_ratio: Any) -> Callable[[Any], jax.Array]:
  def is_sampling(count):
    period = _cycle_length(total_steps, num_cycles)
    pos = jnp.mod(jnp.asarray(count, jnp.int32), period).astype(jnp.float32) / period.astype(jnp.float32)
    return pos >= jnp.asarray(exploration_ratio, jnp.float32)

  return is_sampling


def _check_real_leaves(tree: Any, method: str, what: str = "params") -> None:
  _contracts.check_real_leaves(tree, method, "Langevin dynamics here samples real parameters only", what)


def _normal_like(key: jax.Array, x: jax.Array) -> jax.Array:
  """Standard normal noise of x's shape in float32 (at least), sharded like x in explicit mode."""
  dtype = jnp.promote_types(x.dtype, jnp.float32)
  if _contracts.is_explicit(x):
    return jax.random.normal(key, x.shape, dtype, out_sharding=jax.typeof(x).sharding)
  return jax.random.normal(key, x.shape, dtype)


@_contracts.nan_on_invalid_injected
def scale_by_langevin(step_size: optax.ScalarOrSchedule, *, temperature: float = 1.0, data_size: int = 1,
                      is_sampling: Optional[Callable[[Any], Any]] = None,
                      seed: int = 0) -> optax.GradientTransformation:
  """SGLD on the gradient of a mean loss: -eta_t g + 1[sampling(t)] sqrt(2 eta_t T / N) xi (Zhang et al. 2020).

  With U = N * (mean loss) the negative log posterior and eta = alpha N, this is Welling & Teh's SGLD step
  theta -= alpha grad U + sqrt(2 alpha T) xi for the tempered posterior exp(-U / T). The learning-rate scaling is
  included (the update is the parameter change, like `optax.sgd`), because the noise scale depends on it.

  Args:
    step_size: eta_t (>= 0), scalar or schedule of the step count: the step on the mean loss.
    temperature: T >= 0 (1: the Bayesian posterior; T < 1 a cold posterior; T = 0 plain SGD, no noise).
    data_size: N >= 1, the number of training examples the mean loss averages.
    is_sampling: `count -> bool`; the noise is added only where True (None: every step). `csgld_is_sampling` gives
      cSG-MCMC's exploration / sampling stages.
    seed: the noise of step t is drawn from `fold_in(key(seed), t)` (one key per leaf), so it is reproducible.

  Returns:
    An optax GradientTransformation (real floating-point params; complex leaves are a TypeError).

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> tx = scale_by_langevin(0.1, temperature=0.0)   # T = 0: exactly SGD
    >>> g = {"w": jnp.array([1.0, -2.0])}
    >>> tx.update(g, tx.init(g))[0]["w"].tolist()
    [-0.10000000149011612, 0.20000000298023224]

  References:
    Welling, Teh. "Bayesian Learning via Stochastic Gradient Langevin Dynamics". ICML 2011.
    Zhang, Li, Zhang, Chen, Wilson. "Cyclical Stochastic Gradient MCMC for Bayesian Deep Learning". ICLR 2020.
    arXiv:1902.03932, Algorithm 1.
  """
  validation.check_learning_rate(step_size, "step_size")
  validation.check_nonnegative(temperature, "temperature")
  _check_count_arg(data_size, "data_size")
  is_sampling = _contracts.static_choice(is_sampling, "is_sampling", "SCALE_BY_LANGEVIN_STATIC_ARGS")
  if is_sampling is not None and not callable(is_sampling):
    raise TypeError(f"is_sampling must be None or a function of the step count, got {is_sampling!r}")

  def init_fn(params):
    _check_real_leaves(params, "scale_by_langevin")
    return ScaleByLangevinState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None):
    if params is not None:
      _contracts.check_same_tree(updates, params, "scale_by_langevin", what="the params")
    _check_real_leaves(updates, "scale_by_langevin", what="gradients")
    count = state.count
    eta = step_size(count) if callable(step_size) else step_size
    eta = jnp.asarray(eta, jnp.float32)
    noise_std = jnp.sqrt(2.0 * eta * jnp.asarray(temperature, jnp.float32) / jnp.asarray(data_size, jnp.float32))
    if is_sampling is not None:
      noise_std = jnp.where(is_sampling(count), noise_std, 0.0)
    key = jax.random.fold_in(jax.random.key(seed), count)
    leaves, treedef = jax.tree.flatten(updates)
    out = []
    for i, g in enumerate(leaves):
      gf = g.astype(jnp.promote_types(g.dtype, jnp.float32))
      u = -eta * gf
      if g.size:
        u = u + noise_std * _normal_like(jax.random.fold_in(key, i), g)
      out.append(u.astype(g.dtype))
    return jax.tree.unflatten(treedef, out), ScaleByLangevinState(count=optax.safe_increment(count))

  return optax.GradientTransformation(init_fn, update_fn)


@_contracts.nan_on_invalid_injected
def csgld(learning_rate: float, total_steps: int, num_cycles: int, data_size: int, *,
          exploration_ratio: float = 0.9, temperature: float = 1.0, weight_decay: float = 0.0,
          mask: Optional[Any] = None, seed: int = 0) -> optax.GradientTransformation:
  """cSGLD (Zhang et al. 2020): SGLD with the cyclical cosine step size and an exploration stage per cycle.

  update_t = -eta_t (g + lambda theta) + 1[r(t) >= beta] sqrt(2 eta_t T / N) xi,
  eta_t = learning_rate / 2 [cos(pi mod(t, P) / P) + 1], P = ceil(total_steps / num_cycles), r(t) = mod(t, P) / P.
  Weight decay lambda is the Gaussian prior N(0, 1 / (N lambda)) on the mean-loss scale. Posterior samples are
  taken at the end of each cycle (Gubri et al. 2022 keep the last few iterates of each cycle as surrogates).

  Args:
    learning_rate: eta_0 > 0, the step at the start of each cycle (on the mean loss).
    total_steps: K >= 1, the planned length of the run.
    num_cycles: M >= 1.
    data_size: N >= 1, the number of training examples.
    exploration_ratio: beta in [0, 1], the noise-free fraction of each cycle (0.9: the official cSG-MCMC CIFAR
      script adds noise in the last 5 of each 50-epoch cycle). With temperature > 0 and beta < 1 some step of a
      cycle must reach it, (P - 1) / P >= beta: a shorter cycle is a ValueError, not a silently noise-free run.
    temperature: T >= 0 (1: the posterior; 0: cyclical SGD, i.e. snapshot ensembles).
    weight_decay: lambda >= 0 (the official scripts use 5e-4).
    mask: weight-decay mask, as `optax.add_decayed_weights`.
    seed: noise seed (see `scale_by_langevin`).

  Returns:
    An optax GradientTransformation (params needed only when weight_decay > 0).

  References:
    Zhang, Li, Zhang, Chen, Wilson. "Cyclical Stochastic Gradient MCMC for Bayesian Deep Learning". ICLR 2020.
    arXiv:1902.03932, eq. (1) and Algorithm 1.
    Gubri, Cordy, Papadakis, Le Traon, Sen. "Efficient and Transferable Adversarial Examples from Bayesian Neural
    Networks". UAI 2022. arXiv:2011.05074, Sec. 3.
  """
  validation.check_positive(learning_rate, "learning_rate")
  validation.check_nonnegative(weight_decay, "weight_decay")
  mask = _contracts.decay_mask(mask, "mask", "CSGLD_STATIC_ARGS")
  schedule = cyclical_step_size(learning_rate, total_steps, num_cycles)
  if validation.is_concrete_number(temperature) and float(temperature) == 0.0:   # cyclical SGD: no noise to add
    validation.check_in_interval(exploration_ratio, "exploration_ratio", 0.0, 1.0)
  else:   # a posterior sampler whose cycles never reach the sampling stage is an error, not plain SGD
    _check_some_step_samples(total_steps, num_cycles, exploration_ratio)
  sampling = _sampling_indicator(total_steps, num_cycles, exploration_ratio)
  langevin = scale_by_langevin(schedule, temperature=temperature, data_size=data_size, is_sampling=sampling, seed=seed)
  if validation.is_concrete_number(weight_decay) and float(weight_decay) == 0.0:
    tx = optax.chain(optax.identity(), langevin)  # (same state structure; no params needed without a prior)
  else:
    tx = optax.chain(optax.add_decayed_weights(weight_decay, mask), langevin)

  def update_fn(updates, state, params=None):
    if params is not None:  # name the leaf before add_decayed_weights' tree_map fails on a mismatched tree
      _contracts.check_same_tree(updates, params, "csgld", what="the params")
    return tx.update(updates, state, params)

  return optax.GradientTransformation(tx.init, update_fn)


csgld.STATIC_ARGS = CSGLD_STATIC_ARGS
scale_by_langevin.STATIC_ARGS = SCALE_BY_LANGEVIN_STATIC_ARGS

__all__ = ["CSGLD_STATIC_ARGS", "SCALE_BY_LANGEVIN_STATIC_ARGS", "ScaleByLangevinState", "csgld",
           "csgld_is_sampling", "cyclical_step_size", "scale_by_langevin"]
