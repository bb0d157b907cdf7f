"""[31] per-module drift against a NumPy transcription (relative Frobenius change per top-level module), and FPF:
the frozen modules get exactly zero updates and no optimizer state, the chosen ones exactly the wrapped optimizer's
updates (optax.adam on the sub-tree alone), under jax.jit."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods.analysis import fpf_labels, fpf_transform, module_drift


def _params(rng):
  return {"dense0": {"w": rng.normal(size=(3, 4)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32)},
          "head": {"w": rng.normal(size=(4, 2)).astype(np.float32), "b": np.zeros(2, np.float32)}}


def test_module_drift_and_fpf_transform():
  rng = np.random.default_rng(0)
  old, new = _params(rng), _params(rng)
  drift = jax.jit(module_drift, static_argnames="depth")
  got = drift(old, new)
  for m in ("dense0", "head"):
    d = np.sqrt(sum(np.sum((new[m][k].astype(np.float64) - old[m][k]) ** 2) for k in ("w", "b")))
    n = np.sqrt(sum(np.sum(old[m][k].astype(np.float64) ** 2) for k in ("w", "b")))
    assert float(got[m]) == pytest.approx(d / (n + 1e-12), rel=1e-5)
  assert float(drift(old, old)["head"]) == 0.0
  deep = drift(old, new, depth=2)
  assert set(deep) == {"dense0/w", "dense0/b", "head/w", "head/b"}
  # FPF: head only
  assert fpf_labels(old, ["head"]) == {"dense0": {"w": "freeze", "b": "freeze"}, "head": {"w": "train", "b": "train"}}
  tx = fpf_transform(optax.adam(0.1), old, ["head"])
  ref = optax.adam(0.1)
  grads = jax.tree.map(lambda x: jnp.asarray(x) + 1.0, new)
  state, rstate = tx.init(old), ref.init(old["head"])

  @jax.jit
  def two_steps(state, rstate):
    u1, state = tx.update(grads, state, old)
    u2, state = tx.update(grads, state, old)
    r1, rstate = ref.update(grads["head"], rstate, old["head"])
    r2, rstate = ref.update(grads["head"], rstate, old["head"])
    return u2, r2

  u, r = two_steps(state, rstate)
  for k in ("w", "b"):
    np.testing.assert_array_equal(np.asarray(u["dense0"][k]), 0.0)
    np.testing.assert_allclose(np.asarray(u["head"][k]), np.asarray(r[k]), rtol=1e-6)
  with pytest.raises(ValueError, match="not modules"):
    fpf_labels(old, ["dense7"])
  with pytest.raises(TypeError, match="modules"):
    fpf_labels(old, "head")
  with pytest.raises(ValueError, match="structure"):
    module_drift(old, {"head": new["head"]})


def test_module_drift_keeps_float64():
  # float64 parameters used to be cast to float32, so a 1e-9 relative change read as exactly 0.
  with jax.enable_x64(True):
    old = {"a": jnp.ones(4, jnp.float64)}
    new = {"a": jnp.ones(4, jnp.float64) + 1e-9}
    drift = module_drift(old, new)["a"]
    assert drift.dtype == jnp.float64
    assert float(drift) == pytest.approx(1e-9, rel=1e-6)
