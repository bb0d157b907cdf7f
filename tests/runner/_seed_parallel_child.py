"""The child of tests/runner/test_seed_parallel.py (`distributed.call_with_cpu_devices` runs it in a process with
simulated CPU devices). A module of its own so that the child imports only the experiments it runs."""

from __future__ import annotations

import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods.runner import MeshConfig, make_mesh, shard_leading
from jaxlib_methods.runner import experiment as exp_lib
from jaxlib_methods.runner.sharding import ShardingError


def _flat(x, prefix=""):
  if isinstance(x, dict):
    for k, v in x.items():
      yield from _flat(v, f"{prefix}/{k}")
  elif isinstance(x, (list, tuple)):
    try:
      yield prefix, np.asarray(x, float)
    except (TypeError, ValueError):
      for i, v in enumerate(x):
        yield from _flat(v, f"{prefix}[{i}]")
  elif isinstance(x, (int, float)) and not isinstance(x, bool):
    yield prefix, np.asarray(float(x))


def child(payload: dict) -> dict:
  """In a child with `devices` simulated devices: each named experiment's TINY run (with `payload["overrides"][name]`
  on top, if any) at mesh.data=1 and at mesh.data=devices (the worst relative difference of their numeric results and
  the claims' verdicts), the sharding shard_leading gives, and its error for a seed count the mesh does not divide."""
  n = jax.device_count()
  mesh = make_mesh(MeshConfig(data=n))
  keys = shard_leading(jnp.stack([jax.random.key(i) for i in range(2 * n)]), mesh)
  out = jax.jit(jax.vmap(lambda k: jax.random.normal(k, (4,)).sum()))(keys)
  report = {"devices": n, "out_shard_rows": int(out.addressable_shards[0].data.shape[0]),
            "out_devices": len(out.sharding.device_set)}
  try:
    shard_leading(np.zeros((2 * n + 1, 3)), mesh)
    report["error"] = None
  except ShardingError as e:
    report["error"] = str(e)
  for name in payload["experiments"]:
    e = exp_lib.get(name)
    results, verdicts = {}, {}
    for d in (1, n):
      extra = tuple(payload.get("overrides", {}).get(name, ()))
      config = e.config("cpu", tuple(getattr(e.module, "TINY", ())) + extra + (f"mesh.data={d}",))
      with tempfile.TemporaryDirectory() as wd:
        results[d] = e.run(config, wd)
      # in the claims' order: a claim's text may print a result (e.g. "error 3.6e-16 <= 1e-9"), which rounding moves
      verdicts[d] = [(c.claim, bool(c.passed)) for c in e.claims(results[d])]
    a, b = dict(_flat(results[1])), dict(_flat(results[n]))
    per_key = {}
    for k, v in a.items():
      if "seconds" in k:
        continue   # a wall time (e.g. lightsb_gaussian's fit_seconds), not a result
      if k in b and b[k].shape == v.shape and v.size:
        with np.errstate(all="ignore"):
          r = np.abs(v - b[k]) / (np.abs(v) + 1e-6)
        r = r[np.isfinite(r)]
        if r.size:
          per_key[k] = float(r.max())
    ranked = sorted(per_key.items(), key=lambda kv: -kv[1])
    worst_key, worst = ranked[0] if ranked and ranked[0][1] > 0 else (None, 0.0)
    # which results differ by more than 1e-4 (the test's bound): the five worst, and how many of how many
    same = [v for _, v in verdicts[1]] == [v for _, v in verdicts[n]]
    report[name] = {"max_rel_diff": worst, "worst_key": worst_key, "same_verdicts": same,
                    "worst_keys": [(k, v) for k, v in ranked[:5] if v > 1e-4],
                    "keys_over_1e-4": sum(v > 1e-4 for v in per_key.values()), "keys": len(per_key),
                    "flipped": [c for (c, v), (_, w) in zip(verdicts[1], verdicts[n]) if v != w]}
  return report
