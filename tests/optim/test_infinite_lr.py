"""Infinite LR schedule [175]: against a float64 NumPy transcription of the authors' scheduler (warm-up, cosine or
inverse-sqrt cool-down, constant, exponential annealing; later tasks constant + annealing) and of repeated cosine."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods.optim import continual_infinite_lr_schedule, infinite_lr_schedule, repeated_cosine_schedule


def _inf_np(t, peak, const, end, t_w, t_cd, t_ann=None, t_a=0, cooldown="cosine", a=10.0):
  """Ibrahim et al. 2024 / Singh et al. 2025, phase by phase (the authors' `infinite_lr`, written as math)."""
  if t < t_w:
    return peak * t / t_w
  if t < t_w + t_cd:
    u = (t - t_w) / t_cd
    if cooldown == "cosine":
      return const + (peak - const) / 2 * (math.cos(math.pi * u) + 1)
    h = lambda v: 1 / math.sqrt(1 + a * v) - 1
    return peak + (const - peak) / h(1) * h(u)
  if t_ann is None or t < t_ann:
    return const
  v = min((t - t_ann) / t_a, 1.0)
  return const * math.exp(-math.log(const / end) * v)


@pytest.mark.parametrize("cooldown", ["cosine", "inverse_sqrt"])
def test_infinite_schedule_matches_the_phase_formulas(cooldown):
  kw = dict(peak=3e-3, const=1e-3, end=1e-5, t_w=20, t_cd=50, t_ann=200, t_a=40)
  s = infinite_lr_schedule(kw["peak"], kw["const"], kw["end"], warmup_steps=kw["t_w"], cooldown_steps=kw["t_cd"],
                           anneal_start=kw["t_ann"], anneal_steps=kw["t_a"], cooldown=cooldown)
  ts = np.arange(0, 300)
  ours = np.asarray(jax.jit(jax.vmap(s))(jnp.asarray(ts)))
  want = np.array([_inf_np(t, kw["peak"], kw["const"], kw["end"], kw["t_w"], kw["t_cd"], kw["t_ann"], kw["t_a"],
                           cooldown) for t in ts])
  np.testing.assert_allclose(ours, want, rtol=2e-6)
  # continuity at every phase boundary; monotone after the peak
  assert np.all(np.diff(ours[kw["t_w"]:]) <= 1e-12)


def test_never_annealed_the_schedule_stays_constant_for_ever():
  s = infinite_lr_schedule(1.0, 0.25, 0.01, warmup_steps=5, cooldown_steps=5)
  assert [float(s(t)) for t in (10, 10 ** 4, 10 ** 7)] == [0.25, 0.25, 0.25]


def test_continual_schedule_matches_the_authors_per_task_rule():
  peak, const, end, w, cd, a = 1e-3, 3e-4, 1e-5, 10, 30, 20
  tasks = (100, 80, 80)
  s = continual_infinite_lr_schedule(peak, const, end, task_steps=tasks, warmup_steps=w, cooldown_steps=cd,
                                     anneal_steps=a)
  want, offset = [], 0
  for k, n in enumerate(tasks):
    for t in range(n):
      if k == 0:
        want.append(_inf_np(t, peak, const, end, w, cd, n - a, a))
      else:
        want.append(_inf_np(t, const, const, end, 0, 0, n - a, a))
  ours = np.array([float(s(t)) for t in range(sum(tasks))])
  np.testing.assert_allclose(ours, want, rtol=2e-6)
  assert ours[100] == pytest.approx(const) and ours[99] < 1.5 * end  # back to constant, never to the peak
  assert ours[100:].max() <= const * (1 + 1e-6)


def test_repeated_cosine_rewarms_to_the_peak_on_every_task():
  peak, end, w = 1e-3, 1e-5, 10
  tasks = (100, 80)
  s = repeated_cosine_schedule(peak, end, task_steps=tasks, warmup_steps=w)
  want, offset = [], 0
  for n in tasks:
    for t in range(n):
      if t < w:
        want.append(peak * t / w)
      else:
        want.append(end + 0.5 * (peak - end) * (1 + math.cos(math.pi * (t - w) / (n - w))))
  ours = np.array([float(s(t)) for t in range(sum(tasks))])
  np.testing.assert_allclose(ours, want, rtol=2e-6, atol=1e-12)
  assert ours[100 + w] == pytest.approx(peak)


def test_schedules_drive_optax_and_inject_hyperparams():
  s = infinite_lr_schedule(0.1, 0.05, 0.001, warmup_steps=2, cooldown_steps=2)
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=s)
  p = {"w": jnp.ones(2)}
  st = tx.init(p)
  for _ in range(3):
    _, st = tx.update({"w": jnp.ones(2)}, st, p)
  assert float(st.hyperparams["learning_rate"]) == pytest.approx(float(s(2)))  # the rate of the 3rd step


def test_bad_hyperparameters_are_named():
  with pytest.raises(ValueError, match="constant_value"):
    infinite_lr_schedule(1e-3, 2e-3, 1e-5, warmup_steps=1, cooldown_steps=1)
  with pytest.raises(ValueError, match="end_value"):
    infinite_lr_schedule(1e-3, 1e-4, 0.0, warmup_steps=1, cooldown_steps=1)
  with pytest.raises(ValueError, match="anneal_start"):
    infinite_lr_schedule(1e-3, 1e-4, 1e-5, warmup_steps=10, cooldown_steps=10, anneal_start=15, anneal_steps=5)
  with pytest.raises(ValueError, match="anneal_steps"):
    infinite_lr_schedule(1e-3, 1e-4, 1e-5, warmup_steps=1, cooldown_steps=1, anneal_start=5, anneal_steps=0)
  with pytest.raises(ValueError, match="cooldown"):
    infinite_lr_schedule(1e-3, 1e-4, 1e-5, warmup_steps=1, cooldown_steps=1, cooldown="linear")
  with pytest.raises(ValueError, match="warmup_steps"):
    infinite_lr_schedule(1e-3, 1e-4, 1e-5, warmup_steps=-1, cooldown_steps=1)
  with pytest.raises(ValueError, match="task_steps"):
    continual_infinite_lr_schedule(1e-3, 1e-4, 1e-5, task_steps=(10, 5), warmup_steps=5, cooldown_steps=5,
                                   anneal_steps=2)
  with pytest.raises(ValueError, match="task_steps"):
    repeated_cosine_schedule(1e-3, 1e-5, task_steps=(10,), warmup_steps=10)
