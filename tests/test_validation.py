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


def test_scalar_in_interval_raises_when_concrete_and_poisons_when_traced():
  import jax
  import jax.numpy as jnp

  from jaxlib_methods import validation as v
  assert v.scalar_in_interval(0.5, "a", 0.0, 1.0) is None
  with pytest.raises(ValueError, match="a must lie in"):
    v.scalar_in_interval(1.5, "a", 0.0, 1.0)
  with pytest.raises(ValueError, match="a must be a scalar"):
    v.scalar_in_interval(jnp.ones((2,)), "a", 0.0, 1.0)
  ok = jax.jit(lambda a: v.scalar_in_interval(a, "a", 0.0, 1.0))
  assert bool(ok(0.3)) and not bool(ok(1.5)) and not bool(ok(jnp.nan))


def test_collect_traced_checks_records_traced_verdicts_only_inside_its_block():
  """`collect_traced_checks`: a concrete value out of range still raises; a traced one is recorded as a bool verdict
  (the check's own interval, ends open or closed as asked); nested blocks collect separately; outside a block
  nothing is recorded (the optimizers' NaN-on-invalid-injection rests on this)."""
  import jax
  import jax.numpy as jnp
  import pytest
  from jaxlib_methods import validation as V

  def verdicts(x):
    with V.collect_traced_checks() as got:
      V.check_in_interval(x, "b1", 0.0, 1.0, closed_high=False)
      V.check_learning_rate(x)
      V.check_positive(x, "eps")
      with V.collect_traced_checks() as inner:
        V.check_nonnegative(x, "wd")
      assert len(inner) == 1
    return jnp.stack(got)

  values = jnp.asarray([0.5, 1.0, -0.1, 0.0, jnp.nan])
  out = jax.jit(jax.vmap(verdicts))(values)
  np.testing.assert_array_equal(np.asarray(out), [[True, True, True], [False, True, True], [False, False, False],
                                                  [True, True, False], [False, False, False]])
  with V.collect_traced_checks() as got, pytest.raises(ValueError, match="b1 must lie in"):
    V.check_in_interval(1.5, "b1", 0.0, 1.0)
  assert got == []
  jax.jit(lambda x: V.check_in_interval(x, "b1", 0.0, 1.0) or x)(jnp.asarray(2.0))   # no block: passed through


def test_collect_traced_checks_ignores_concrete_arrays():
  """A concrete (non-tracer) array is not recorded inside the block, as outside it: only tracers get a verdict."""
  import jax.numpy as jnp
  from jaxlib_methods import validation as V
  with V.collect_traced_checks() as got:
    V.check_in_interval(jnp.asarray([0.5, 2.0]), "w", 0.0, 1.0)
    V.check_learning_rate(np.asarray([-1.0, 1.0]))
  assert got == []
