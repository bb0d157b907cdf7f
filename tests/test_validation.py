"""jaxlib_methods.validation.check_int: both error conventions, checked against hand-written expectations."""

import numpy as np
import pytest

from jaxlib_methods.validation import check_int


def test_check_int_both_conventions():
  # accepted: Python and NumPy ints at or above the minimum, returned as a Python int
  for v in (3, np.int64(3), np.int32(3)):
    for value_error in (False, True):
      out = check_int(v, "n", 3, value_error=value_error)
      assert out == 3 and type(out) is int
  assert check_int(-5, "n") == -5 and check_int(-5, "n", value_error=True) == -5   # no minimum
  # default: TypeError for a non-int (bools included), ValueError below the minimum
  for bad in (True, np.bool_(False), 2.0, np.float32(2), "2", None):
    with pytest.raises(TypeError, match=r"^n must be an int, got n="):
      check_int(bad, "n", 1)
  with pytest.raises(ValueError, match=r"^n must be >= 1, got n=0$"):
    check_int(0, "n", 1)
  # value_error=True: one ValueError with one message for both failures (the nn layers' convention)
  for bad in (True, 2.0, "2", None, 0, np.int64(0)):
    with pytest.raises(ValueError, match=r"^n must be an int >= 1, got n="):
      check_int(bad, "n", 1, value_error=True)
  with pytest.raises(ValueError, match=r"^n must be an int, got n=2\.0$"):
    check_int(2.0, "n", value_error=True)
