"""The layers_exact_identities experiment [73] [61]: its retrieval metric and class means against NumPy loops."""

import jax.numpy as jnp
import numpy as np

from experiments import layers_exact_identities as exp


def test_retrieval_accuracy_and_class_means_match_numpy():
  rng = np.random.default_rng(0)
  fq, fg = rng.normal(size=(9, 3)), rng.normal(size=(11, 3))
  yq, yg = rng.integers(0, 3, 9), rng.integers(0, 3, 11)
  nq = fq / np.linalg.norm(fq, axis=1, keepdims=True)
  ng = fg / np.linalg.norm(fg, axis=1, keepdims=True)
  hits = [yg[np.argmin([np.linalg.norm(q - g) for g in ng])] == y for q, y in zip(nq, yq)]
  import jax
  # Both helpers in one jitted program (eager: ~28 small compiles).
  acc, got_means = jax.jit(lambda fq, yq, fg, yg: (exp.retrieval_accuracy(fq, yq, fg, yg), exp.class_means(fg, yg, 3)))(
      jnp.asarray(fq), jnp.asarray(yq), jnp.asarray(fg), jnp.asarray(yg))
  np.testing.assert_allclose(acc, np.mean(hits), rtol=1e-6)
  means = np.stack([fg[yg == k].mean(0) for k in range(3)])
  np.testing.assert_allclose(got_means, means, rtol=1e-5, atol=1e-6)


def test_repquant_part_quantisers_match_numpy_and_the_no_fold_mutation_breaks_the_identity():
  """[33]: the channel-wise min-max quantiser against a NumPy transcription; folding (`repq=reparam`) reproduces the
  channel-wise codes exactly, the mutation (`repq=skip`) does not."""
  import dataclasses
  import jax
  small = dict(repq_channels=8, repq_out=4, repq_outliers=1, repq_calib=32, repq_test=64)
  both = jax.jit(lambda k: [exp.repquant_one(dataclasses.replace(exp.Config(), repq=v, **small), k, 4)
                            for v in ("reparam", "skip")])
  with jax.enable_x64(True):   # one seed, one compile
    ok, bad = both(jax.random.key(0))
  assert int(ok["code_mismatches"]) == 0 and float(ok["output_vs_channel"]) <= 1e-9
  assert int(bad["code_mismatches"]) > 0
  np.testing.assert_allclose(float(ok["err_reparam"]), float(ok["err_channel"]), rtol=1e-9)
  # NumPy transcription of the b-bit asymmetric min-max quantiser (s = (max - min) / (2^b - 1), z = round(-min / s))
  rng = np.random.default_rng(0)
  x = rng.normal(size=(50, 3)) * np.array([1.0, 10.0, 0.1]) + np.array([0.0, 5.0, -1.0])
  s = (x.max(0) - x.min(0)) / 15
  z = np.round(-x.min(0) / s)
  q = np.clip(np.round(x / s) + z, 0, 15)
  with jax.enable_x64(True):
    s_j, z_j = exp._minmax_quantizer(jnp.asarray(x.min(0)), jnp.asarray(x.max(0)), 4)
    np.testing.assert_allclose(np.asarray(exp._codes(jnp.asarray(x), s_j, z_j, 4)), q)
  assert q.min() == 0 and q.max() == 15


def test_oca_loss_matches_a_torch_transcription_of_the_official_trainer():
  """[61]: `oca_loss` against the official trainers/OCA_trainer.py written out in PyTorch (float64): LabelSmoothing
  CE on fc_out(fc_orth(phi)), the BCT influence CE on normalised phi[:, :d_old] @ P^T, CosineEmbeddingLoss to
  P[target]; 5 / 10 / 5 weights; and align_weight = 0 leaves the CE term alone."""
  import jax
  import pytest
  torch = pytest.importorskip("torch", reason="the OCA parity test needs PyTorch (pip install torch)")
  F = torch.nn.functional
  rng = np.random.default_rng(3)
  n, d_in, hidden, d_old, delta, k = 12, 5, 7, 3, 2, 4
  d = d_old + delta
  p = {"w1": rng.normal(size=(d_in, hidden)), "b1": rng.normal(size=hidden), "w2": rng.normal(size=(hidden, d)),
       "b2": rng.normal(size=d), "head": rng.normal(size=(k, d)), "a": 0.3 * rng.normal(size=(d, d)),
       "c": rng.normal(size=d)}
  x, y = rng.normal(size=(n, d_in)), rng.integers(0, k, n)
  protos = rng.normal(size=(k, d_old))

  def smoothed_ce(logits, target, s=0.1):     # utils/net_utils.py LabelSmoothing
    logp = F.log_softmax(logits, dim=-1)
    return ((1 - s) * -logp.gather(-1, target[:, None])[:, 0] + s * -logp.mean(-1)).mean()

  t = {kk: torch.tensor(v) for kk, v in p.items()}
  xt, yt, pt = torch.tensor(x), torch.tensor(y), torch.tensor(protos)
  phi = F.normalize(torch.relu(xt @ t["w1"] + t["b1"]) @ t["w2"] + t["b2"], dim=1)
  b = torch.linalg.matrix_exp(t["a"] - t["a"].T)
  output = (phi @ b.T + t["c"]) @ t["head"].T
  bct = F.normalize(phi[:, :d_old], dim=1)
  cos = torch.nn.CosineEmbeddingLoss()(pt[yt], bct, torch.ones(n, dtype=torch.float64))
  want = {1.0: float(5 * smoothed_ce(output, yt) + 10 * smoothed_ce(bct @ pt.T, yt) + 5 * cos),
          0.0: float(5 * smoothed_ce(output, yt))}
  with jax.enable_x64(True):
    for w, value in want.items():
      got = exp.oca_loss({kk: jnp.asarray(v) for kk, v in p.items()}, jnp.asarray(x), jnp.asarray(y),
                         jnp.asarray(protos), num_classes=k, align_weight=w)
      np.testing.assert_allclose(float(got), value, rtol=1e-10)
