"""jit_fast_compile: the same numbers as jax.jit, its compiler option really reaches XLA on CPU, and only there."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.runner import compile as compile_lib
from jaxlib_methods.runner import jit_fast_compile


def _loop(x):
  def body(c, _):
    return jnp.tanh(c @ c.T) @ c + 0.1 * c, jnp.sum(c)
  return jax.lax.scan(body, x, None, length=20)


def test_same_numbers_as_jax_jit():
  x = jax.random.normal(jax.random.key(0), (3, 8, 8))
  fast = jit_fast_compile(jax.vmap(_loop))(x)
  ref = jax.jit(jax.vmap(_loop))(x)
  for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(ref)):
    np.testing.assert_array_equal(a, b)


def test_the_option_reaches_the_compiler(monkeypatch):
  """An option value XLA rejects must make compilation fail on CPU: so the options are passed, not dropped. Off the
  CPU (a GPU test machine) they are not passed: the same program compiles."""
  monkeypatch.setattr(compile_lib, "FAST_COMPILE_OPTIONS", {"xla_backend_optimization_level": "not-a-level"})
  if jax.default_backend() == "cpu":
    with pytest.raises(Exception):
      jit_fast_compile(lambda x: x * 2.0 + 1.0)(jnp.ones(3))
  else:
    np.testing.assert_array_equal(jit_fast_compile(lambda x: x * 2.0 + 1.0)(jnp.ones(3)), 3.0)


def test_plain_jit_off_cpu(monkeypatch):
  monkeypatch.setattr(compile_lib, "FAST_COMPILE_OPTIONS", {"xla_backend_optimization_level": "not-a-level"})
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  np.testing.assert_array_equal(jit_fast_compile(lambda x: x * 2.0 + 1.0)(jnp.ones(3)), 3.0)


def test_rejects_compiler_options():
  with pytest.raises(TypeError, match="sets compiler_options itself"):
    jit_fast_compile(lambda x: x, compiler_options={"xla_backend_optimization_level": 2})


def test_jit_kwargs_pass_through():
  f = jit_fast_compile(lambda x, n: x * n, static_argnums=1)
  np.testing.assert_array_equal(f(jnp.ones(2), 3), 3.0)
