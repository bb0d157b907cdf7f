"""The infinite learning-rate schedule for continual pre-training, and the repeated cosine it replaces.

Paper [175]: Vaibhav Singh, Paul Janson, Paria Mehrbod, Adam Ibrahim, Irina Rish, Eugene Belilovsky, Benjamin
Therien, "Beyond Cosine Decay: On the effectiveness of Infinite Learning Rate Schedule for Continual Pre-training",
CoLLAs 2025, arXiv:2503.02844. The schedule is from Ibrahim et al., "Simple and Scalable Strategies to Continually
Pre-train Large Language Models", TMLR 2024, arXiv:2403.08763 (Sec. 7): one warm-up and cool-down to a constant rate
that then holds across tasks (no re-warming), and a short annealing whenever a model is wanted:

    warm-up    eta(t) = eta_max * t / T_w                                                  0 <= t < T_w
    cool-down  eta(t) = eta_const + (eta_max - eta_const)/2 * (1 + cos(pi (t - T_w) / T_cd))   (cosine; or inverse
               square root, eta_max + (eta_const - eta_max) h(u)/h(1), h(u) = 1/sqrt(1 + a u) - 1, u the progress)
    constant   eta(t) = eta_const                                                          until the annealing
    annealing  eta(t) = eta_const * (eta_min / eta_const)^((t - T_ann) / T_a)               exponential, T_a steps

as in the authors' scheduler (cooldown styles "cosine_cooldown_infinite" / "inverse_sqrt_infinite", timescale a = 10,
exponential decay to min_lr). In the continual setting of the paper's code the first task runs the four phases and
every later task runs constant + annealing: the rate returns from eta_min to eta_const (never to eta_max) when a new
task starts. The repeated cosine baseline re-warms to eta_max and decays to eta_min again on every task.
"""

from __future__ import annotations

import math
from typing import Literal, Optional, Sequence

import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods import validation

COOLDOWNS = ("cosine", "inverse_sqrt")


def _check_steps(x, name: str, low: int = 0) -> int:
  if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < low:
    raise ValueError(f"{name} must be an int >= {low}, got {name}={x!r}")
  return int(x)


def _check_rates(peak_value, constant_value, end_value) -> None:
  for v, name in ((peak_value, "peak_value"), (constant_value, "constant_value"), (end_value, "end_value")):
    validation.check_positive(v, name)
  if validation.is_concrete_number(peak_value) and validation.is_concrete_number(constant_value) and \
      float(constant_value) > float(peak_value):
    raise ValueError(f"constant_value must be <= peak_value (the cool-down goes down), got {constant_value=}, "
                     f"{peak_value=}")
  if validation.is_concrete_number(end_value) and validation.is_concrete_number(constant_value) and \
      float(end_value) > float(constant_value):
    raise ValueError(f"end_value must be <= constant_value (the annealing goes down), got {end_value=}, "
                     f"{constant_value=}")


def infinite_lr_schedule(
    peak_value: float,
    constant_value: float,
    end_value: float,
    *,
    warmup_steps: int,
    cooldown_steps: int,
    anneal_start: Optional[int] = None,
    anneal_steps: int = 0,
    cooldown: Literal["cosine", "inverse_sqrt"] = "cosine",
    timescale: float = 10.0,
) -> optax.Schedule:
  """The infinite LR schedule: warm-up -> cool-down -> constant -> (optional) exponential annealing.

  Singh et al., "Beyond Cosine Decay: On the effectiveness of Infinite Learning Rate Schedule for Continual
  Pre-training", 2025, arXiv:2503.02844 (its schedule, from Ibrahim et al. 2024, arXiv:2403.08763, Sec. 7):
  eta(t) = peak * t / T_w for t < T_w; cosine (or inverse-sqrt) cool-down from peak to constant over T_cd steps;
  constant until `anneal_start`; then constant * (end / constant)^((t - anneal_start) / anneal_steps) for
  `anneal_steps` steps, and `end_value` after. With `anneal_start=None` the constant phase never ends: no training
  budget is fixed in advance, and annealing can start at any step.

  Args:
    peak_value: eta_max > 0.
    constant_value: eta_const, 0 < eta_const <= eta_max.
    end_value: eta_min, 0 < eta_min <= eta_const (the annealing is exponential, so > 0).
    warmup_steps: T_w >= 0 (0: start at the peak).
    cooldown_steps: T_cd >= 0 (0: jump to the constant).
    anneal_start: step at which the annealing starts (>= T_w + T_cd), or None (never).
    anneal_steps: T_a >= 1 when `anneal_start` is given.
    cooldown: "cosine" or "inverse_sqrt" (the authors' two cool-down styles).
    timescale: a > 0 of the inverse-sqrt cool-down.

  Returns:
    An optax schedule `step -> learning rate` (float32; works on traced steps).

  Examples:
    >>> s = infinite_lr_schedule(1.0, 0.5, 0.05, warmup_steps=10, cooldown_steps=10, anneal_start=30,
    ...                          anneal_steps=10)
    >>> [round(float(s(t)), 4) for t in (5, 10, 20, 25, 30, 40, 50)]
    [0.5, 1.0, 0.5, 0.5, 0.5, 0.05, 0.05]
  """
  _check_rates(peak_value, constant_value, end_value)
  t_w = _check_steps(warmup_steps, "warmup_steps")
  t_cd = _check_steps(cooldown_steps, "cooldown_steps")
  if cooldown not in COOLDOWNS:
    raise ValueError(f"cooldown must be one of {COOLDOWNS}, got {cooldown=!r}")
  validation.check_positive(timescale, "timescale")
  if anneal_start is not None:
    anneal_start = _check_steps(anneal_start, "anneal_start", t_w + t_cd)
    t_a = _check_steps(anneal_steps, "anneal_steps", 1)
  else:
    t_a = _check_steps(anneal_steps, "anneal_steps")
  peak, const, end = float(peak_value), float(constant_value), float(end_value)
  log_ratio = math.log(end / const)
  h1 = 1.0 / math.sqrt(1.0 + timescale) - 1.0

  def schedule(count):
    t = jnp.asarray(count, jnp.float32)
    warm = peak * t / max(t_w, 1)
    u = jnp.clip((t - t_w) / max(t_cd, 1), 0.0, 1.0)
    if cooldown == "cosine":
      cool = const + 0.5 * (peak - const) * (1.0 + jnp.cos(jnp.pi * u))
    else:
      cool = peak + (const - peak) * (1.0 / jnp.sqrt(1.0 + timescale * u) - 1.0) / h1
    lr = jnp.where(t < t_w, warm, jnp.where(t < t_w + t_cd, cool, const))
    if anneal_start is not None:
      v = jnp.clip((t - anneal_start) / t_a, 0.0, 1.0)
      lr = jnp.where(t < anneal_start, lr, const * jnp.exp(log_ratio * v))
    return lr.astype(jnp.float32)

  return schedule


def continual_infinite_lr_schedule(
    peak_value: float,
    constant_value: float,
    end_value: float,
    *,
    task_steps: Sequence[int],
    warmup_steps: int,
    cooldown_steps: int,
    anneal_steps: int,
    cooldown: Literal["cosine", "inverse_sqrt"] = "cosine",
    timescale: float = 10.0,
) -> optax.Schedule:
  """The infinite schedule over a sequence of tasks, as in the authors' continual pre-training code.

  Task 0 (`task_steps[0]` steps): warm-up, cool-down, constant, and exponential annealing over its last
  `anneal_steps` steps; every later task k: the constant rate, then annealing over its last `anneal_steps` steps
  (no warm-up, no return to the peak). Singh et al. 2025, arXiv:2503.02844.

  Args:
    peak_value: eta_max > 0.
    constant_value: eta_const, 0 < eta_const <= eta_max.
    end_value: eta_min, 0 < eta_min <= eta_const.
    task_steps: steps of each task (each task's constant phase must be non-negative).
    warmup_steps: T_w >= 0, of the first task only.
    cooldown_steps: T_cd >= 0, of the first task only.
    anneal_steps: T_a >= 1, at the end of every task.
    cooldown: "cosine" or "inverse_sqrt" (see `infinite_lr_schedule`).
    timescale: a > 0 of the inverse-sqrt cool-down (see `infinite_lr_schedule`).

  Returns:
    An optax schedule over sum(task_steps) steps (after the last task: `end_value`).
  """
  steps = [_check_steps(n, "task_steps[i]", 1) for n in task_steps]
  if not steps:
    raise ValueError("task_steps must list at least one task")
  _check_steps(anneal_steps, "anneal_steps", 1)
  first = steps[0] - anneal_steps
  if first < warmup_steps + cooldown_steps:
    raise ValueError(f"task_steps[0]={steps[0]} is shorter than warmup_steps + cooldown_steps + anneal_steps = "
                     f"{warmup_steps + cooldown_steps + anneal_steps}")
  if any(n < anneal_steps for n in steps[1:]):
    raise ValueError(f"every task must last at least anneal_steps={anneal_steps} steps, got {steps}")
  parts = [infinite_lr_schedule(peak_value, constant_value, end_value, warmup_steps=warmup_steps,
                                cooldown_steps=cooldown_steps, anneal_start=first, anneal_steps=anneal_steps,
                                cooldown=cooldown, timescale=timescale)]
  for n in steps[1:]:
    parts.append(infinite_lr_schedule(constant_value, constant_value, end_value, warmup_steps=0, cooldown_steps=0,
                                      anneal_start=n - anneal_steps, anneal_steps=anneal_steps))
  parts.append(optax.constant_schedule(float(end_value)))
  boundaries = list(np.cumsum(steps))
  return optax.join_schedules(parts, boundaries)


def repeated_cosine_schedule(
    peak_value: float,
    end_value: float,
    *,
    task_steps: Sequence[int],
    warmup_steps: int,
) -> optax.Schedule:
  """Repeated cosine decay: on every task, linear re-warm-up from 0 to `peak_value`, then cosine decay to `end_value`.

  The baseline of Singh et al. 2025 (arXiv:2503.02844) and Ibrahim et al. 2024 (arXiv:2403.08763); built from
  `optax.warmup_cosine_decay_schedule` per task and equal to `optax.sgdr_schedule` with those pieces.

  Args:
    peak_value: eta_max > 0.
    end_value: eta_min, 0 <= eta_min <= eta_max.
    task_steps: steps of each task (each > warmup_steps).
    warmup_steps: re-warm-up length of every task (>= 0).

  Returns:
    An optax schedule over sum(task_steps) steps.
  """
  validation.check_positive(peak_value, "peak_value")
  validation.check_nonnegative(end_value, "end_value")
  if validation.is_concrete_number(end_value) and float(end_value) > float(peak_value):
    raise ValueError(f"end_value must be <= peak_value, got {end_value=}, {peak_value=}")
  w = _check_steps(warmup_steps, "warmup_steps")
  steps = [_check_steps(n, "task_steps[i]", w + 1) for n in task_steps]
  if not steps:
    raise ValueError("task_steps must list at least one task")
  return optax.sgdr_schedule([dict(init_value=0.0, peak_value=float(peak_value), warmup_steps=w, decay_steps=n,
                                   end_value=float(end_value)) for n in steps])


__all__ = ["COOLDOWNS", "continual_infinite_lr_schedule", "infinite_lr_schedule", "repeated_cosine_schedule"]
