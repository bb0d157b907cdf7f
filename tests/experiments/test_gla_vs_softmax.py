"""The GLA-vs-softmax experiment [206]: its recall data are right and a tiny run produces its results and claims."""

import dataclasses

import jax
import numpy as np
import pytest

from experiments import gla_vs_softmax as exp


def test_associative_recall_batch_answers_are_determined_by_context():
  tokens, mask = exp.associative_recall_batch(jax.random.key(0), 4, num_pairs=5, num_keys=12, num_values=7)
  tokens, mask = np.asarray(tokens), np.asarray(mask)
  assert tokens.shape == (4, 20) and mask.shape == (4, 19)
  for b in range(4):
    keys, vals = tokens[b, 0:10:2], tokens[b, 1:10:2]
    assert len(set(keys)) == 5 and np.all(keys < 12) and np.all((vals >= 12) & (vals < 19))
    table = dict(zip(keys, vals))
    scored = np.nonzero(mask[b])[0] + 1                               # target positions
    assert len(scored) == 5
    for pos in scored:
      assert pos >= 10 and tokens[b, pos] == table[tokens[b, pos - 1]]


@pytest.mark.slow  # ~8 jit compilations of a transformer (~1 min on 2 busy cores)
def test_tiny_run_produces_results_and_claims(tmp_path):
  cfg = dataclasses.replace(exp.Config(), d_model=16, num_layers=1, num_heads=2, lm_seq_len=16, lm_steps=3,
                            recall_steps=3, num_pairs=2, num_keys=4, num_values=4, batch_size=4, eval_batches=1,
                            log_every=2)
  results = exp.run(cfg, tmp_path)
  assert (tmp_path / "figure.png").exists() and (tmp_path / "metrics.jsonl").exists()
  for key in ("lm/softmax", "lm/gla", "recall/softmax", "recall/gla"):
    assert np.isfinite(results[key]["eval_loss"]) and 0.0 <= results[key]["eval_acc"] <= 1.0
  claims = exp.claims(results)
  assert len(claims) == 5 and all(isinstance(c.passed, bool) for c in claims)
