"""The bias-loss experiment [50]: the convnet's conv against lax.conv, the low-information data, the claims' logic."""

import jax
import jax.numpy as jnp
import numpy as np

from experiments import _seed_stats as st
from experiments import bias_loss_low_info as exp
from jaxlib_methods.runner import experiment as exp_lib


def test_conv_and_data():
  # conv3x3 (9 shifted views, one einsum) against XLA's convolution, an independent implementation.
  kx, kw, kb = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (3, 8, 8, 2))
  w = jax.random.normal(kw, (3, 3, 2, 4))
  b = jax.random.normal(kb, (4,))
  ref = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + b
  np.testing.assert_allclose(exp.conv3x3(x, w, b), ref, rtol=1e-5, atol=1e-5)
  # The data: a fraction low_info_fraction of low-contrast training images, whose labels are random; a clean test set.
  cfg = exp_lib.get("bias_loss_low_info").config("cpu", ("n_train=4000",))
  x, y, low, xt, yt = exp.make_data(cfg, 0)
  assert x.shape == (4000, 8, 8, 1) and xt.shape == (cfg.n_test, 8, 8, 1) and y.dtype == np.int32
  assert abs(low.mean() - cfg.low_info_fraction) < 0.03
  ratio = np.sqrt(np.mean(x[low] ** 2) / np.mean(x[~low] ** 2))
  assert abs(ratio - cfg.low_contrast) < 0.02                        # the contrast of the low-information images
  # A nearest-template classifier recovers the labels of the normal images, not those of the low-information ones
  # (their labels are random: chance 1 / K).
  templates = np.stack([xt[yt == c].mean(0) for c in range(cfg.num_classes)])
  pred = np.argmax(np.einsum("nhwc,khwc->nk", x, templates), 1)
  assert np.mean(pred[~low] == y[~low]) > 0.6
  assert abs(np.mean(pred[low] == y[low]) - 1 / cfg.num_classes) < 0.04
  np.testing.assert_array_equal(exp.make_data(cfg, 0)[1], y)          # seeded


def test_claims_need_the_interval_above_zero():
  def res(bias_acc):
    ce = [0.80, 0.82, 0.78, 0.81]
    r = {"channels": 8, "test_acc": {"ce": ce, "bias": bias_acc}, "diff": st.paired_ci(bias_acc, ce),
         "weight_low": 0.70, "weight_high": 0.85}
    return r
  better, same = res([0.82, 0.83, 0.80, 0.83]), res([0.80, 0.82, 0.78, 0.81])
  rows = exp.claims({"narrow": better, "wide": same})
  assert [(r.kind, r.passed) for r in rows] == [("paper", True), ("paper", False), ("sanity", True)]
  noisy = res([0.85, 0.80, 0.80, 0.81])                               # mean +0.0125, but the interval holds 0
  assert not exp.claims({"narrow": noisy, "wide": better})[0].passed
  assert not exp.claims({"narrow": dict(better, weight_low=0.9), "wide": better})[2].passed


def test_bias_slot_ce_trains_the_same_model_twice():
  # The mutation `bias_slot=ce`: both slots train CE from the same weights and batches, so their accuracies agree
  # exactly (the claims' difference is 0); with the bias loss the two slots differ.
  cfg = exp_lib.get("bias_loss_low_info").config("cpu", ("seeds=2", "steps=20", "n_train=200", "n_test=100",
                                                          "batch_size=20", "bias_slot=ce"))
  data = [exp.make_data(cfg, r) for r in range(cfg.seeds)]
  out = exp.train_all(cfg, data, 4)
  acc = np.asarray(out["test_acc"])
  np.testing.assert_array_equal(acc[0::2], acc[1::2])
  assert np.all(np.asarray(out["weight_low"]) < np.asarray(out["weight_high"]))
