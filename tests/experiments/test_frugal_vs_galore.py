"""The FRUGAL vs GaLore experiment [84, 105]: its pieces are right and a tiny run produces results and claims.

The mutation tests of this experiment run under `-m slow` (MUTATION_TEST_SLOW: five transformer compilations);
this file is its fast check in the default suite.
"""

import dataclasses
import math

import jax
import numpy as np
import optax

from experiments import frugal_vs_galore as exp
from jaxlib_methods.optim import q_galore


def test_tiny_run_counts_svds_and_tunes_lrs(tmp_path):
  cfg = dataclasses.replace(exp.Config(), methods=("galore", "q_galore"), vocab=16, d_model=16, heads=2, seq_len=8,
                            batch=4, steps=24, warmup=2, update_gap=3, learning_rates=(1e-3, 1e-2), num_seeds=2,
                            eval_batches=1, log_every=12)
  res = exp.run(cfg, tmp_path)
  assert res["methods"] == ["galore", "q_galore"] and sorted(res["not_run"]) == ["adamw", "frugal", "frugal_rho0"]
  assert np.asarray(res["runs"]["galore"]["final"]).shape == (2, 2)              # [lr, seed]
  assert res["tuned_lr"]["q_galore"] == res["tuned_lr"]["galore"]                # Q-GaLore runs at GaLore's LR
  # GaLore refreshes at t % gap == 0: 6 projected matrices x ceil(24 / 3) refreshes, per seed.
  assert res["svd_calls"]["galore"] == 2 * 6 * math.ceil(24 / 3)
  assert 0 < res["svd_calls"]["q_galore"] <= res["svd_calls"]["galore"]
  assert res["galore_rank"] == round(2 * 0.25 * 16 / 3)
  assert (tmp_path / "figure.png").exists() and (tmp_path / "metrics.jsonl").exists()
  claims = {c.claim: c for c in exp.claims(res)}
  assert len(claims) == 5 and sum(c.kind == "paper" for c in claims.values()) == 4
  # The FRUGAL claims cannot pass when FRUGAL did not run.
  assert not claims["FRUGAL < GaLore in final val loss at every seed, each at its tuned LR"].passed


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
