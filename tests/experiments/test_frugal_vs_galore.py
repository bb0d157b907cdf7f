"""The FRUGAL vs GaLore experiment [84]: runs end to end on a tiny config; its pieces are right."""

import dataclasses

import jax
import numpy as np

from experiments import frugal_vs_galore as exp


def test_tiny_run_and_claims(tmp_path):
  cfg = dataclasses.replace(exp.Config(), vocab=16, d_model=16, heads=2, seq_len=8, batch=8, steps=6, warmup=2,
                            update_gap=3, eval_batches=1, log_every=3)
  res = exp.run(cfg, tmp_path)
  assert set(res["final_val_loss"]) == {"adamw", "galore", "frugal", "frugal_rho0"}
  assert all(np.isfinite(v) for v in res["final_val_loss"].values())
  assert res["entropy_rate"] < np.log(16)
  # Equal memory by construction: GaLore rank round(2 rho d / 3) vs FRUGAL columns rho.
  assert res["galore_rank"] == round(2 * 0.25 * 16 / 3)
  assert (tmp_path / "figure.png").exists() and (tmp_path / "metrics.jsonl").exists()
  claims = exp.claims(res)
  assert len(claims) == 3


def test_q_galore_analytic_ratio_closed_form():
  r = exp.q_galore_analytic_ratio()
  # A single 4096 x 4096 matrix, rank 1024: GaLore 2*d^2 + 2*d*r bytes; Q-GaLore d^2 (1 + 8/256) + d*r (1/2 + 8/256).
  assert 0.45 < r["ratio"] < 0.6


def test_split_mask_is_the_papers_choice():
  p = exp.init_params(jax.random.PRNGKey(0), exp.Config(vocab=8, d_model=8, heads=2))
  m = exp.split_mask(p)
  assert not m["embed"] and not m["head"] and not m["ln_f"] and not m["block"]["ln1"]
  assert m["block"]["attn"]["q"] and m["block"]["mlp"]["down"]
