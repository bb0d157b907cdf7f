"""S4D: the convolutional and recurrent views of a diagonal SSM agree, and the S4D-LegS kernel converges to the
S4-LegS kernel as the state size N grows.

Paper [132]: Albert Gu, Ankit Gupta, Karan Goel, Christopher Re, "On the Parameterization and Initialization of
Diagonal State Space Models", NeurIPS 2022, arXiv:2206.11893.

1. Sec. 3: the S4D kernel (Vandermonde product, `jaxlib_methods.nn.ssm.s4d_kernel`) convolved with the input by an
   FFT of length 2L equals the SSM's recurrence x_k = dA x_{k-1} + dB u_k, y_k = 2 Re(C x_k) (here a
   `lax.associative_scan`): for every init (S4D-Lin, S4D-Inv, S4D-LegS) and both discretisations (ZOH, bilinear),
   the `S4DLayer`'s SSM parameters give the same output by `fft_causal_conv` and by `s4d_recurrence` (the layer's
   conv and recurrent modes) (float32, max relative error <= 1e-4, fixed
   before the run).
2. Sec. 4.1 (the diagonal restriction of HiPPO-LegS): the SSM (Lambda, V^* B / 2) with Lambda the eigenvalues of the
   normal part of the HiPPO-LegS matrix produces, as N -> infinity, the same kernel as S4's (A_LegS, B_LegS). The
   reference is computed independently in float64 NumPy/SciPy from the dense, non-normal HiPPO-LegS matrix: ZOH
   dA = expm(dt A), dB = A^{-1}(dA - I) B, K_l = e_n^T dA^l dB for the first `basis` state coordinates n (the S4 basis
   functions; A_LegS is lower triangular, so they do not depend on N). The S4D-LegS kernel of coordinate n is
   `s4d_kernel` with C = V[n] (the eigenvector rows) and B = V^* B / 2. Claims: the mean relative L2 error over the
   basis functions decreases strictly at every doubling of N from `n_min`, and at the largest N it is <= 0.1 (a
   converged-kernel threshold fixed before the run; the paper gives no number).
Mutations: `legs_b_scale=1` (B_LegS not halved: the kernel converges to twice S4's), `fft_length=L` (circular
FFT convolution: wraps around and breaks causality).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from flax import nnx

from jaxlib_methods.nn import ssm
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, sweep
from jaxlib_methods.runner.constraints import PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=132, title="On the Parameterization and Initialization of Diagonal State Space Models",
              year=2022, arxiv="2206.11893")
DEMO = True


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  n_min: Annotated[int, Range(ge=4)] = 32          # smallest state size N (even)
  doublings: Annotated[int, Range(ge=2, le=8)] = 4  # N = n_min * 2^j, j = 0 .. doublings
  basis: Annotated[int, Range(ge=1, le=16)] = 4    # S4-LegS basis functions compared (state coordinates 0 .. basis-1)
  dt: PositiveFloat = 0.01                          # step of the discretisation
  length: Annotated[int, Range(ge=8, le=4096)] = 400   # kernel length L (L * dt = 4 time units)
  legs_b_scale: PositiveFloat = 0.5                # B = scale * B_LegS in S4D-LegS (paper: 1/2; mutation: 1)
  channels: PositiveInt = 8                        # S4DLayer width for the conv-vs-recurrent check
  state_size: Annotated[int, Range(ge=2)] = 64     # S4DLayer state size N for that check
  seq_len: PositiveInt = 256
  fft_length: Literal["2L", "L"] = "2L"            # "L": circular convolution (a deliberately wrong variant)
  mesh: MeshConfig = MeshConfig()   # devices the basis kernels and the 2 test sequences are split over

  CHECKS = ()


PRESETS = {"cpu": Config(), "gpu": Config(doublings=6), "tpu": Config(doublings=6)}
TINY = ("doublings=2", "length=200", "dt=0.02", "seq_len=64", "n_min=64")
MUTATIONS = {"b_not_halved": ("legs_b_scale=1.0",), "circular_fft": ("fft_length=L",)}
MUTATION_TEST_SLOW = True   # the TINY run compiles the FFT and associative-scan paths and builds float64 kernels
                            # for three state sizes: ~10 s of CPU

INITS = ("lin", "inv", "legs")
DISCRETIZATIONS = ("zoh", "bilinear")


def s4_legs_basis_kernels(state_size: int, basis: int, dt: float, length: int) -> np.ndarray:
  """S4's HiPPO-LegS ZOH kernels of the first `basis` state coordinates, float64 [basis, length] (dense expm)."""
  q = np.sqrt(2.0 * np.arange(state_size) + 1.0)                    # written out again: independent of nn.ssm
  a = -np.tril(np.outer(q, q), -1) - np.diag(np.arange(state_size) + 1.0)
  da = scipy.linalg.expm(dt * a)
  x = np.linalg.solve(a, (da - np.eye(state_size)) @ q)
  out = np.empty((basis, length))
  for l in range(length):
    out[:, l] = x[:basis]
    x = da @ x
  return out


def s4d_legs_basis_kernels(state_size: int, basis: int, dt: float, length: int, b_scale: float,
                           mesh=None) -> np.ndarray:
  """The S4D-LegS kernels of the same coordinates with the library's `s4d_legs` + `s4d_kernel` (float64); with a
  `mesh`, the basis coordinates' kernels (independent channels) are split over its devices."""
  lam, b_half, v = ssm.s4d_legs(state_size, return_eigenvectors=True)
  b = b_half * (b_scale / 0.5)
  with jax.enable_x64(True):
    args = (np.full((basis,), np.log(dt)), np.tile(lam, (basis, 1)), v[:basis], np.tile(b, (basis, 1)))
    args = shard_leading(args, mesh, what="basis coordinate") if mesh is not None else tuple(map(jnp.asarray, args))
    log_dt, a, c, bb = args
    k = _kernel_jit(log_dt, a, c, length, bb)
    return np.asarray(k)


_kernel_jit = jax.jit(lambda log_dt, a, c, length, b: ssm.s4d_kernel(log_dt, a, c, length, B=b),
                      static_argnums=(3,))


def convergence(config: Config) -> dict:
  sizes = [config.n_min * 2 ** j for j in range(config.doublings + 1)]
  errors, examples = [], {}
  for n in sizes:
    ref = s4_legs_basis_kernels(n, config.basis, config.dt, config.length)
    approx = s4d_legs_basis_kernels(n, config.basis, config.dt, config.length, config.legs_b_scale,
                                    make_mesh(config.mesh))
    rel = np.linalg.norm(approx - ref, axis=1) / np.linalg.norm(ref, axis=1)
    errors.append(rel.tolist())
    if n in (sizes[0], sizes[-1]):
      examples[str(n)] = {"s4": ref[:2].tolist(), "s4d": approx[:2].tolist()}
  return {"sizes": sizes, "errors": errors, "mean_errors": [float(np.mean(e)) for e in errors],
          "examples": examples}


def _both_views(log_dt, a, c, d, x, discretization, fft_length):
  """(conv output, recurrent output) of one S4D SSM: the layer's FFT path and its associative-scan path."""
  length = x.shape[1]
  kern = ssm.s4d_kernel(log_dt, a, c, length, discretization=discretization)
  if fft_length == "2L":
    y_conv = ssm.fft_causal_conv(x, kern)
  else:  # circular convolution of length L (wrong: wraps the kernel's tail onto the start)
    y_conv = jnp.fft.irfft(jnp.fft.rfft(x, axis=1) * jnp.fft.rfft(kern, axis=-1).T[None], n=length, axis=1)
  y_rec = ssm.s4d_recurrence(x, log_dt, a, c, discretization=discretization)
  return y_conv + x * d, y_rec + x * d


_both_views_jit = jax.jit(_both_views, static_argnames=("discretization", "fft_length"))


def conv_vs_recurrence(config: Config) -> dict:
  x = jax.random.normal(jax.random.PRNGKey(config.seed), (2, config.seq_len, config.channels))
  x = shard_leading(x, make_mesh(config.mesh), what="sequence")   # the batch's 2 sequences
  out = {}
  for init in INITS:
    for disc in DISCRETIZATIONS:
      layer = ssm.S4DLayer(config.channels, config.state_size, init=init, discretization=disc,
                           rngs=nnx.Rngs(config.seed))
      log_dt, a, c = layer.ssm_params()
      y_conv, y_rec = _both_views_jit(log_dt, a, c, layer.D[...], x, discretization=disc,
                                      fft_length=config.fft_length)
      out[f"{init}/{disc}"] = float(jnp.max(jnp.abs(y_conv - y_rec)) / jnp.max(jnp.abs(y_rec)))
  return out


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  conv = sweep.memoized(workdir, {"part": "conv_vs_recurrence"}, lambda: conv_vs_recurrence(config))
  conv_ = sweep.memoized(workdir, {"part": "convergence"}, lambda: convergence(config))   # a rerun reads both back
  for i, (n, e) in enumerate(zip(conv_["sizes"], conv_["mean_errors"])):
    log.log(i, state_size=n, mean_rel_error=e)
  results = {"conv_vs_recurrence": conv, "convergence": conv_}
  _figure(results, config, workdir)
  return results


def claims(results: dict) -> list[Claim]:
  conv = results["conv_vs_recurrence"]
  c = results["convergence"]
  errs = c["mean_errors"]
  decreasing = all(b < a for a, b in zip(errs, errs[1:]))
  return [
      Claim.at_most("FFT-convolution output == recurrent (associative-scan) output: max relative error over the "
                    "3 inits x 2 discretisations", max(conv.values()), 1e-4, paper="equal (two views of one SSM)",
                    kind="paper", where="Sec. 3 (S4D kernel computation; convolutional and recurrent views)"),
      Claim.holds("S4D-LegS -> S4-LegS: mean relative kernel error decreases at every doubling of N",
                  decreasing, paper="error decreasing in N (converges as N -> infinity)",
                  detail=f"strictly decreasing: {[round(e, 4) for e in errs]}", kind="paper",
                  where="Sec. 4.1 (diagonal restriction of HiPPO-LegS)"),
      Claim.at_most("S4D-LegS -> S4-LegS: mean relative kernel error at the largest N", errs[-1], 0.1,
                    paper="-> 0 as N -> infinity", kind="paper",
                    where="Sec. 4.1 (diagonal restriction of HiPPO-LegS)"),
      Claim.at_most("error ratio largest N / smallest N (the ~1/N rate would give 2^-doublings)",
                    errs[-1] / errs[0], 0.5, paper="-", kind="sanity"),
  ]


def _figure(results, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  c = results["convergence"]
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  errs = np.asarray(c["errors"])
  for n in range(errs.shape[1]):
    axes[0].loglog(c["sizes"], errs[:, n], "o-", label=f"basis function n = {n}")
  axes[0].loglog(c["sizes"], np.asarray(c["mean_errors"]), "k--", label="mean")
  axes[0].set_xlabel("state size N")
  axes[0].set_ylabel("relative L2 error, S4D-LegS vs S4-LegS kernel")
  axes[0].legend(fontsize=7)
  t = np.arange(config.length) * config.dt
  for key, style in zip(c["examples"], (":", "-")):
    ex = c["examples"][key]
    for n in range(2):
      axes[1].plot(t, ex["s4d"][n], style, label=f"S4D-LegS N={key}, n={n}")
  for n in range(2):
    axes[1].plot(t, ex["s4"][n], "k--", lw=0.8, label="S4-LegS" if n == 0 else None)
  axes[1].set_xlabel("t = l * dt")
  axes[1].set_ylabel("kernel K_l")
  axes[1].legend(fontsize=6)
  fig.suptitle("S4D (Gu et al. 2022): the diagonal LegS kernel converges to S4's as N grows")
  save_figure(fig, workdir / "figure.png")
