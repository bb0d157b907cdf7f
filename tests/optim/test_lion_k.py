"""Lion-K [193]: special case = optax.lion (bitwise), float64 NumPy transcription of every grad K, lion-pytorch
parity, composability and bad input."""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods.optim import K_NAMES, lion_k, make_k_function, scale_by_lion_k
from jaxlib_methods.optim import grad_huber, grad_lp


def _tree(key, dtype=jnp.float32):
  k1, k2, k3 = jax.random.split(key, 3)
  return {"w": jax.random.normal(k1, (4, 5), dtype), "b": jax.random.normal(k2, (5,), dtype),
          "nested": {"s": jax.random.normal(k3, (), dtype)}}


def _grads(key, params, step):
  k = jax.random.fold_in(key, step)
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(k, len(leaves))
  return jax.tree.unflatten(treedef, [jax.random.normal(kk, x.shape, x.dtype) for kk, x in zip(keys, leaves)])


def _run(tx, params, key, steps):
  state = tx.init(params)
  for t in range(steps):
    updates, state = tx.update(_grads(key, params, t), state, params)
    params = optax.apply_updates(params, updates)
  return params, state


@pytest.mark.parametrize("weight_decay", [0.0, 1e-3, 0.3])
def test_l1_equals_optax_lion_bitwise(weight_decay):
  key = jax.random.PRNGKey(0)
  params = _tree(key)
  ours, _ = _run(lion_k(3e-3, b1=0.9, b2=0.99, weight_decay=weight_decay, grad_K="l1"), params, key, 100)
  ref, _ = _run(optax.lion(3e-3, b1=0.9, b2=0.99, weight_decay=weight_decay), params, key, 100)
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_l1_equals_optax_lion_under_jit_with_mask():
  key = jax.random.PRNGKey(1)
  params = _tree(key)
  mask = {"w": True, "b": False, "nested": {"s": False}}
  tx1, tx2 = lion_k(1e-2, weight_decay=0.1, mask=mask), optax.lion(1e-2, weight_decay=0.1, mask=mask)

  @jax.jit
  def step(p1, s1, p2, s2, g):
    u1, s1 = tx1.update(g, s1, p1)
    u2, s2 = tx2.update(g, s2, p2)
    return optax.apply_updates(p1, u1), s1, optax.apply_updates(p2, u2), s2

  p1 = p2 = params
  s1, s2 = tx1.init(params), tx2.init(params)
  for t in range(30):
    p1, s1, p2, s2 = step(p1, s1, p2, s2, _grads(key, params, t))
  for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ---- float64 NumPy transcription of the paper's update and of each grad K (written here, independently) -------------

def _np_grad_k(name, x, e=1.0, p=3.0):
  if name == "l1":
    return np.sign(x)
  if name == "half_l2sq":
    return x.copy()
  if name == "l2":
    n = np.linalg.norm(x)
    return x / n if n > 0 else np.zeros_like(x)
  if name == "lp":
    n = np.sum(np.abs(x) ** p) ** (1 / p)
    return np.sign(x) * np.abs(x) ** (p - 1) / n ** (p - 1) if n > 0 else np.zeros_like(x)
  if name == "linf":
    out = np.zeros(x.size)
    i = int(np.argmax(np.abs(x.ravel())))
    out[i] = np.sign(x.ravel()[i])
    return out.reshape(x.shape)
  if name == "huber":
    return np.clip(x / e, -1, 1)
  if name == "dead_zone":
    return np.where(np.abs(x) > e, np.sign(x), 0.0)
  if name == "relativistic":
    return x / np.sqrt(x * x + e * e)
  raise KeyError(name)


@pytest.mark.parametrize("name", K_NAMES)
def test_update_matches_float64_numpy_transcription(name):
  e, p = 0.3, 3.0
  lr, b1, b2, wd = 1e-2, 0.9, 0.99, 0.2
  rng = np.random.default_rng(0)
  x0 = {"w": rng.normal(size=(3, 4)), "v": rng.normal(size=(6,))}
  grads = [{k: rng.normal(size=v.shape) for k, v in x0.items()} for _ in range(25)]
  # NumPy: x <- x - lr (gradK(b1 m + (1-b1) g) + wd x);  m <- b2 m + (1-b2) g
  x_np = {k: v.copy() for k, v in x0.items()}
  m_np = {k: np.zeros_like(v) for k, v in x0.items()}
  for g in grads:
    for k in x_np:
      c = b1 * m_np[k] + (1 - b1) * g[k]
      x_np[k] = x_np[k] - lr * (_np_grad_k(name, c, e, p) + wd * x_np[k])
      m_np[k] = b2 * m_np[k] + (1 - b2) * g[k]
  with jax.enable_x64(True):
    grad_k = make_k_function(name, e=e, p=p).grad
    tx = lion_k(lr, b1=b1, b2=b2, weight_decay=wd, grad_K=grad_k)
    x = jax.tree.map(jnp.asarray, x0)
    state = tx.init(x)
    for g in grads:
      updates, state = tx.update(jax.tree.map(jnp.asarray, g), state, x)
      x = optax.apply_updates(x, updates)
    for k in x_np:
      assert x[k].dtype == jnp.float64
      np.testing.assert_allclose(np.asarray(x[k]), x_np[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["l1", "l2", "linf", "huber", "dead_zone", "relativistic", "half_l2sq", "lp"])
def test_conjugate_is_fenchel_conjugate(name):
  """K*(y) = sup_x <x, y> - K(x): check Fenchel-Young equality at y = grad K(x) (where K* is finite)."""
  with jax.enable_x64(True):
    kf = make_k_function(name, e=0.5, p=3.0)
    x = jnp.asarray(np.random.default_rng(1).normal(size=7))
    y = kf.grad(x)
    np.testing.assert_allclose(float(kf.value(x) + kf.conjugate(y)), float(jnp.dot(x, y)), rtol=1e-9, atol=1e-12)
    # and Fenchel-Young inequality K(x) + K*(y') >= <x, y'> at a random feasible y'
    y2 = kf.grad(jnp.asarray(np.random.default_rng(2).normal(size=7)))
    assert float(kf.value(x) + kf.conjugate(y2)) >= float(jnp.dot(x, y2)) - 1e-12


def test_zero_gradient_update_is_pure_weight_decay():
  """Weight decay is applied outside sign(): with g = 0 and m = 0 the update is exactly -lr * wd * x."""
  params = {"w": jnp.array([1.0, -2.0, 3.0])}
  tx = lion_k(0.1, weight_decay=0.5)
  updates, _ = tx.update({"w": jnp.zeros(3)}, tx.init(params), params)
  np.testing.assert_allclose(np.asarray(updates["w"]), -0.1 * 0.5 * np.array([1.0, -2.0, 3.0]), rtol=1e-7)


def test_box_is_invariant_for_lion():
  """The paper's constraint: once ||x||_inf <= 1/lambda, Lion keeps it there, whatever the gradients."""
  lam, lr = 4.0, 0.01
  key = jax.random.PRNGKey(3)
  params = {"x": jax.random.uniform(key, (50,), minval=-1 / lam, maxval=1 / lam)}
  tx = lion_k(lr, weight_decay=lam)
  state = tx.init(params)
  for t in range(200):
    g = {"x": 100.0 * jax.random.normal(jax.random.fold_in(key, t), (50,))}
    updates, state = tx.update(g, state, params)
    params = optax.apply_updates(params, updates)
    assert float(jnp.max(jnp.abs(params["x"]))) <= 1 / lam * (1 + 1e-6)


def test_chain_jit_and_dtype_preserved():
  params = {"w": jnp.ones((3, 3), jnp.bfloat16)}
  tx = optax.chain(optax.clip_by_global_norm(1.0), lion_k(1e-3))
  state = tx.init(params)
  step = jax.jit(lambda g, s, p: tx.update(g, s, p))
  updates, state = step({"w": jnp.full((3, 3), 2.0, jnp.bfloat16)}, state, params)
  assert updates["w"].dtype == jnp.bfloat16
  assert state[1][0].mu["w"].dtype == jnp.bfloat16
  s32 = lion_k(1e-3, mu_dtype=jnp.float32).init(params)
  assert s32[0].mu["w"].dtype == jnp.float32


def test_inject_hyperparams_no_retrace_and_equal_to_unwrapped():
  key = jax.random.PRNGKey(4)
  params = _tree(key)
  traces = []
  tx = optax.inject_hyperparams(lion_k)(learning_rate=1e-2, b1=0.9, b2=0.99, weight_decay=0.1)

  @jax.jit
  def step(p, s, g):
    traces.append(1)
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  p, s = params, tx.init(params)
  for t in range(10):
    s.hyperparams["learning_rate"] = jnp.asarray(1e-2 * (t + 1) / 10)
    s.hyperparams["b1"] = jnp.asarray(0.9 - 0.01 * t)
    p, s = step(p, s, _grads(key, params, t))
  assert len(traces) == 1
  assert s.hyperparams["learning_rate"].dtype == jnp.float32
  # constant hyperparameters: wrapped == unwrapped
  wrapped, _ = _run(optax.inject_hyperparams(lion_k)(learning_rate=1e-2, weight_decay=0.1), params, key, 20)
  plain, _ = _run(lion_k(1e-2, weight_decay=0.1), params, key, 20)
  for a, b in zip(jax.tree.leaves(wrapped), jax.tree.leaves(plain)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


def test_bad_input_raises_clear_errors():
  with pytest.raises(ValueError, match="learning_rate"):
    lion_k(-1e-3)
  with pytest.raises(ValueError, match="b1"):
    lion_k(1e-3, b1=1.5)
  with pytest.raises(ValueError, match="b2"):
    scale_by_lion_k(b2=-0.1)
  with pytest.raises(ValueError, match="weight_decay"):
    lion_k(1e-3, weight_decay=-1.0)
  with pytest.raises(ValueError, match="unknown K"):
    lion_k(1e-3, grad_K="l7")
  with pytest.raises(ValueError, match="e"):
    grad_huber(0.0)
  with pytest.raises(ValueError, match="p"):
    grad_lp(1.0)
  with pytest.raises(TypeError, match="grad_K"):
    lion_k(1e-3, grad_K=3)


def test_nonfinite_gradient_does_not_crash_and_apply_if_finite_skips_it():
  params = {"w": jnp.ones(3)}
  tx = optax.apply_if_finite(lion_k(1e-2), max_consecutive_errors=5)
  state = tx.init(params)
  updates, state = tx.update({"w": jnp.array([1.0, jnp.nan, 0.0])}, state, params)
  np.testing.assert_array_equal(np.asarray(updates["w"]), 0.0)
  assert int(state.notfinite_count) == 1


@pytest.mark.parity
def test_parity_with_lion_pytorch():
  torch = pytest.importorskip("torch", reason="torch not installed: `make test` installs torch==2.13.0 (CPU)")
  if importlib.util.find_spec("lion_pytorch") is None:
    pytest.skip("lion-pytorch not installed (make test installs it with --no-deps)")
  from lion_pytorch import Lion
  rng = np.random.default_rng(5)
  x0 = rng.normal(size=(8, 6)).astype(np.float32)
  grads = [rng.normal(size=x0.shape).astype(np.float32) for _ in range(50)]
  lr, wd = 1e-2, 0.3
  p = torch.nn.Parameter(torch.tensor(x0))
  opt = Lion([p], lr=lr, betas=(0.9, 0.99), weight_decay=wd)
  for g in grads:
    p.grad = torch.tensor(g)
    opt.step()
  # lion-pytorch decays first (p *= 1 - lr*wd) then adds -lr*sign(c): the same update as ours up to rounding.
  tx = lion_k(lr, b1=0.9, b2=0.99, weight_decay=wd)
  x = jnp.asarray(x0)
  s = tx.init(x)
  for g in grads:
    u, s = tx.update(jnp.asarray(g), s, x)
    x = optax.apply_updates(x, u)
  np.testing.assert_allclose(np.asarray(x), p.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", K_NAMES)
def test_complex_grad_k_is_the_gradient_of_k_in_the_real_view(name):
  """Complex entries are points of R^2: grad_K(z) must equal dK/dRe + i dK/dIm of K(z) = K evaluated with |z_i|
  (checked by autodiff of K's value on (Re, Im), independent of the hand-written gradients)."""
  k = make_k_function(name)
  rng = np.random.default_rng(3)
  re, im = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
  with jax.enable_x64(True):
    re, im = jnp.asarray(re, jnp.float64), jnp.asarray(im, jnp.float64)
    value = lambda a, b: k.value(jax.lax.complex(a, b))
    d_re, d_im = jax.grad(value, argnums=(0, 1))(re, im)
    got = k.grad(jax.lax.complex(re, im))
    if name == "half_l2sq":  # K = |z|^2 / 2 has gradient (Re, Im): z itself
      np.testing.assert_allclose(np.asarray(got), np.asarray(re + 1j * im), rtol=1e-12)
    else:
      np.testing.assert_allclose(np.asarray(got), np.asarray(d_re + 1j * d_im), rtol=1e-9, atol=1e-12)


def test_linf_and_lp_on_empty_and_nan_tensors():
  x = jnp.asarray([[1.0, -3.0, 3.0], [2.0, -3.0, 0.0]])
  for name, grad in (("linf", make_k_function("linf").grad), ("lp", grad_lp(3.0))):
    # one program per grad K: the 0-size, NaN and tie inputs together
    empty, out, ties = jax.jit(lambda e, n, x: (grad(e), grad(n), grad(x)))(
        jnp.zeros((0, 3)), jnp.asarray([[1.0, jnp.nan], [0.5, -2.0]]), x)
    assert empty.shape == (0, 3)  # 0-size: no max of an empty array
    assert np.all(np.isnan(np.asarray(out)))  # a NaN input never becomes a plausible finite direction
    if name == "linf":
      np.testing.assert_array_equal(np.asarray(ties), [[0, -1, 0], [0, 0, 0]])  # the first max


def test_integer_params_and_mismatched_gradients_are_rejected():
  with pytest.raises(TypeError, match=r"lion_k: leaf \['n'\] of the params has dtype int32"):
    lion_k(0.1).init({"w": jnp.ones(3), "n": jnp.ones(2, jnp.int32)})
  tx = lion_k(0.1)
  st = tx.init({"w": jnp.ones(3), "b": jnp.ones(2)})
  with pytest.raises(ValueError, match=r"lion_k: the gradient tree does not match.*\['b'\]"):
    tx.update({"w": jnp.ones(3)}, st, {"w": jnp.ones(3)})
