"""The FRUGAL vs GaLore experiment [84, 105]: its pieces are right and a tiny run produces results and claims.

The mutation tests of this experiment run under `-m slow` (MUTATION_TEST_SLOW: five transformer compilations);
the other checks of this file run in the default suite, the tiny run under `-m slow` too.
"""

import dataclasses
import math

import jax
import numpy as np
import optax
import pytest

from experiments import frugal_vs_galore as exp
from jaxlib_methods.optim import q_galore


@pytest.mark.slow  # ~16 s of CPU (transformer compiles per method and learning rate); [84]/[105] are not reproduced
def test_tiny_run_tunes_on_seed_0_judges_other_seeds_and_counts_svds(tmp_path):
  cfg = dataclasses.replace(exp.Config(), methods=("galore", "q_galore"), vocab=16, d_model=16, heads=2, seq_len=8,
                            batch=4, steps=24, warmup=2, update_gap=3, learning_rates=(1e-3, 1e-2), num_seeds=2,
                            eval_batches=1, log_every=12)
  res = exp.run(cfg, tmp_path)
  assert res["methods"] == ["galore", "q_galore"] and sorted(res["not_run"]) == ["adamw", "frugal", "frugal_rho0"]
  assert len(res["tuning_final_val_loss"]["galore"]) == 2 and "q_galore" not in res["tuning_final_val_loss"]
  assert res["seeds"] == [1, 2] and [s for _, s in res["judged"]["galore"]["runs"]] == [1, 2]  # not the tuning seed
  i = res["tuned_lr_index"]["galore"]
  assert res["tuning_final_val_loss"]["galore"][i] == min(res["tuning_final_val_loss"]["galore"])
  assert res["tuned_lr"]["q_galore"] == res["tuned_lr"]["galore"] == cfg.learning_rates[i]  # Q-GaLore at GaLore's LR
  # GaLore refreshes at t % gap == 0: 6 projected matrices x ceil(24 / 3) refreshes, per judged seed.
  assert res["svd_calls"]["galore"] == 2 * 6 * math.ceil(24 / 3)
  assert 0 < res["svd_calls"]["q_galore"] <= res["svd_calls"]["galore"]
  # Equal state memory: GaLore's rank is the one whose state is closest to FRUGAL's in bytes (within 15% here).
  sb = res["state_bytes"]
  assert abs(sb["galore"] - sb["frugal"]) <= 0.15 * sb["frugal"] and sb["adamw"] > 2 * sb["frugal"]
  assert sb["galore"] >= 4 * res["state_floats"]["galore"]          # float32 state, plus int leaves
  assert (tmp_path / "figure.png").exists() and (tmp_path / "metrics.jsonl").exists()
  claims = {c.claim: c for c in exp.claims(res)}
  assert len(claims) == 5 and sum(c.kind == "paper" for c in claims.values()) == 4
  # The FRUGAL claims cannot pass when FRUGAL did not run.
  assert not claims["FRUGAL beats GaLore at equal optimizer-state memory, each at its tuned LR"].passed
  assert not claims["FRUGAL close to AdamW: it closes most of GaLore's gap to AdamW"].passed


def test_galore_state_floats_match_a_count_by_hand():
  """GaLore's state (rank r, "std" side) on the projected d x d and d x 4d matrices, and Adam's on the rest, counted
  from the shapes by hand: an independent check of the memory numbers the figure prints."""
  cfg = dataclasses.replace(exp.Config(), vocab=16, d_model=8, heads=2)
  d, v, r = 8, 16, 3
  adam_rest = 2 * (v * d + d * v + 3 * d)                 # embed, head, ln_f/ln1/ln2: Adam's two moments
  # square q/k/v/o: basis d x r + moments 2 x (r x d); up (d x 4d): basis d x r (the short side), moments 2 x r x 4d;
  # down (4d x d): basis d x r, moments 2 x 4d x r.
  proj = 4 * (d * r + 2 * r * d) + 2 * (d * r + 2 * r * 4 * d)
  got = exp.state_floats_of("galore", cfg, r)
  assert adam_rest + proj <= got <= adam_rest + proj + 64   # + scalar placeholders (one per leaf and state field)
  assert exp.state_floats_of("adamw", cfg, r) >= 2 * (adam_rest // 2 + 4 * d * d + 2 * 4 * d * d)


def test_svd_calls_reads_q_galores_state_and_never_lazy_equals_galores_schedule():
  params = exp.init_params(jax.random.PRNGKey(0), dataclasses.replace(exp.Config(), vocab=8, d_model=8, heads=2))
  mask = exp.split_mask(params)
  tx = q_galore(1e-3, rank=2, update_gap=4, projection_mask=mask, cos_threshold=2.0)   # the lazy rule never fires
  state = tx.init(params)
  grads = jax.tree.map(lambda p: jax.random.normal(jax.random.PRNGKey(1), p.shape), params)
  update = jax.jit(tx.update)
  for _ in range(10):
    _, state = update(grads, state, params)
  n_proj = sum(bool(m) for m in jax.tree.leaves(mask))
  assert exp.svd_calls(state) == n_proj * math.ceil(10 / 4)                     # the count GaLore's schedule gives
  assert exp.svd_calls(optax.adam(1e-3).init(params)) == 0


def test_split_mask_is_the_papers_choice():
  p = exp.init_params(jax.random.PRNGKey(0), exp.Config(vocab=8, d_model=8, heads=2))
  m = exp.split_mask(p)
  assert not m["embed"] and not m["head"] and not m["ln_f"] and not m["block"]["ln1"]
  assert m["block"]["attn"]["q"] and m["block"]["mlp"]["down"]
