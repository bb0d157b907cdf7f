"""The 12-bit task of Shwartz-Ziv & Tishby's information-plane experiments: the released labels, and a task regenerated
from its description.

Shwartz-Ziv & Tishby, "Opening the Black Box of Deep Neural Networks via Information", 2017, arXiv:1703.00810,
Sec. 3.1: "the input X is 12 binary inputs that represent 12 uniformly distributed points on a 2D sphere"; all
2^12 = 4096 patterns; the label is y = Theta(f(x) - theta) for a spherically symmetric real function f and a
threshold theta chosen so that p(y = 1) ~ 0.5. The authors released the labels (data/var_u.mat) but not f:
`released_twelve_bit_task` returns those labels (shipped here, 512 bytes); `twelve_bit_task` builds a task from the
description (no download):

- the 12 points are the vertices of the regular icosahedron (12 exactly uniformly spread points on the sphere);
- f(x) = sum_i x_i - ||sum_i x_i v_i|| (the number of "on" points minus the length of their resultant), which
  depends on the pattern only through the configuration of its points, so it is invariant under every rotation of
  the sphere that maps the icosahedron to itself (the spherical symmetry, on this point set);
- theta = 4.2 gives p(y = 1) = 0.527; the share of y = 1 among patterns with 5, 6, 7 "on" points is 7.6%, 61.9%,
  92.4% (the released labels: 7.6%, 57.6%, 92.4%, as tabulated by the deep-bottleneck project's documentation),
  0 below 5 and 1 above 7, as there.
"""

from __future__ import annotations

import hashlib

import jax.numpy as jnp
import numpy as np


def icosahedron_vertices() -> np.ndarray:
  """The 12 unit vertices of the regular icosahedron, float64 [12, 3] (cyclic permutations of (0, +-1, +-phi)).

  The 12 input points of the 12-bit task of Shwartz-Ziv & Tishby, "Opening the Black Box of Deep Neural Networks via
  Information", 2017, arXiv:1703.00810, Sec. 3.1.
  """
  phi = (1.0 + 5.0 ** 0.5) / 2.0
  v = []
  for a in (-1.0, 1.0):
    for b in (-phi, phi):
      v += [(0.0, a, b), (a, b, 0.0), (b, 0.0, a)]
  v = np.asarray(v, np.float64)
  return v / np.linalg.norm(v, axis=1, keepdims=True)


def twelve_bit_task(*, theta: float = 4.2, dtype=jnp.float32):
  """All 4096 12-bit patterns and their labels y = [f(x) > theta] (Shwartz-Ziv & Tishby 2017, arXiv:1703.00810,
  Sec. 3.1; f as in the module docstring: a rotation-invariant function of the 12 icosahedron points switched on).

  Args:
    theta: the threshold (4.2 gives p(y = 1) = 0.527, the paper's ~0.5).
    dtype: float dtype of the inputs.

  Returns:
    (x, y): x [4096, 12] in {0, 1} (row i is the binary expansion of i, bit k in column k), y [4096] int32 labels.
  """
  if not isinstance(theta, (int, float, np.integer, np.floating)) or isinstance(theta, (bool, np.bool_)) \
      or not np.isfinite(theta):
    raise ValueError(f"theta must be a finite float, got {theta=}")
  bits = ((np.arange(4096)[:, None] >> np.arange(12)) & 1).astype(np.float64)
  f = bits.sum(1) - np.linalg.norm(bits @ icosahedron_vertices(), axis=1)
  return jnp.asarray(bits, dtype), jnp.asarray((f > float(theta)).astype(np.int32))


# The labels y of the authors' released data/var_u.mat (variables F [4096, 12] and y [1, 4096], uint8), as shipped by
# github.com/ravidziv/IDNNs and by github.com/ivansche/adaptive_estimators (MIT License, Copyright (c) 2019 ivansche;
# file sha256 0ba9551878a855396a8de0cbaae620788ede1e7b1eb2b8373bbe017d5ea02036), packed with np.packbits (first label
# in the most significant bit) and written as hex. Row i of F is the 12-bit binary expansion of i, most significant
# bit first: that F is rebuilt below, not stored.
_RELEASED_LABELS_HEX = (
    "0000000000000003000000030001173f000000010001051f0000011705175f7f0000000300000017000001330013177f000000030007073f"
    "0000013f15177f7f000000030000010f000000170007177f0001000f050f0f7f0007073f175f7fff0003003f0007033f0013033f003f3fff"
    "001f073f077f0fff003f073f5f7f7fff0000000000000007000000130101177f000000070505175f00001517555f7f7f000000130000003f"
    "001311331113777f0017003f155f5f7f1517153f555f7f7f000000070007050f0000003f05075f7f051f077f5f5f5fff155f5f7f5f5fffff"
    "013f037f057f0fff117f33ff557f7fff5fff7fff7fffffff7fff7fffffffffff0000000100000117000111371117777f000000030105171f"
    "0111173757577fff000100330013133f1133337f17777fff001300331517173f1133777f77777fff000000030000013f0013133f15177f7f"
    "0007000f050f5f7f1517173f5f5f7fff0037133f003f133f137f33ff777f7fff177f17ff5f7f5fff777f77ff7f7f7fff0000001300001517"
    "1111177755777f7f0115151755555f5f555577777f7fffff1137137f1577777f777777ff7777ffff577f777f7f7f7f7f77ff77ffffffffff"
    "0017003f1517153f1577777f55777f7f577f5f7f5fff5fff7f7f7f7fffffffff77ff7fff7fff7fff7fffffffffffffffffffffffffffffff"
    "ffffffffffffffff"
)
_RELEASED_LABELS_SHA256 = "371b2b46a5052b4f69f7991ca141fb5afa1ac364ef7beb81ec900eecac2f86d9"


def released_twelve_bit_task(*, dtype=jnp.float32):
  """The 12-bit task as its authors released it (data/var_u.mat): all 4096 patterns and their released labels.

  Shwartz-Ziv & Tishby, "Opening the Black Box of Deep Neural Networks via Information", 2017, arXiv:1703.00810,
  Sec. 3.1 (the task); the file is the one their code (IDNNs) and Chelombiev et al.'s (arXiv:1902.09037;
  github.com/ivansche/adaptive_estimators, idnns/networks/utils.py `load_data`) train on. p(y = 1) = 2118/4096 =
  0.517; the share of y = 1 among patterns with 5, 6, 7 "on" bits is 60/792, 532/924, 732/792 (7.6%, 57.6%, 92.4%),
  0 below 5 and 1 above 7.

  Args:
    dtype: float dtype of the inputs.

  Returns:
    (x, y): x [4096, 12] in {0, 1}, row i the binary expansion of i with the most significant bit in column 0 (the
    released F); y [4096] int32 labels (the released y).
  """
  packed = bytes.fromhex(_RELEASED_LABELS_HEX)
  if hashlib.sha256(packed).hexdigest() != _RELEASED_LABELS_SHA256:
    raise RuntimeError("the stored released 12-bit labels are damaged (sha256 mismatch)")
  y = np.unpackbits(np.frombuffer(packed, np.uint8))
  bits = (np.arange(4096)[:, None] >> np.arange(11, -1, -1)) & 1
  return jnp.asarray(bits, dtype), jnp.asarray(y.astype(np.int32))
