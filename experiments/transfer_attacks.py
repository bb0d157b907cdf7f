"""Transfer attacks from surrogate ensembles to held-out models: cSGLD surrogates [106], MI-CWA [111], AdaEA [115].

Papers (one toy harness, one paper claim each):
  [106] Gubri, Cordy, Papadakis, Le Traon, Sen, "Efficient and Transferable Adversarial Examples from Bayesian Neural
        Networks", UAI 2022, arXiv:2011.05074: I-FGSM that attacks, at each iteration, the next of the posterior
        samples collected by one cSGLD run transfers better than I-FGSM on one deterministic (SGD) surrogate trained
        for the same number of steps (Table 1: cSGLD surrogates raise the transfer success rate on every target).
  [111] Chen, Zhang, Dong, Yang, Su, Zhu, "Rethinking Model Ensemble in Transfer-based Adversarial Attacks", ICLR
        2024, arXiv:2303.09105: MI-CWA on an ensemble of surrogates transfers better than MI-FGSM on the same
        logit ensemble (Table 1).
  [115] Chen, Yin, Chen, Chen, Liu, "An Adaptive Model Ensemble Adversarial Attack for Boosting Adversarial
        Transferability", ICCV 2023, arXiv:2308.02897: AdaEA (AGM + DRF on I-FGSM) transfers better than I-FGSM on
        the equally weighted logit ensemble (Table 1, "Ens" vs "AdaEA" with I-FGSM as the base attack).

Setup ("surrogate MLPs vs held-out MLPs"). Seeded synthetic images [side, side, 3] in [0, 1]: a class template (a
random smooth pattern) plus Gaussian noise, clipped. Surrogates: `num_surrogates` one-hidden-layer MLPs trained by
SGD from different seeds, and one cSGLD chain (`jaxlib_methods.optim.csgld`, the same number of steps, samples taken
at the end of each of `csgld_cycles` cycles). Targets: `num_targets` MLPs of another width (`target_hidden`) from
other seeds, never seen by the attacks. All models train in one jitted scan through `jaxlib_methods.runner.train`.
Attacks (`jaxlib_methods.attacks`, L_inf budget eps) run on `num_attack` held-out test images that every target
classifies correctly; success = the fraction of (image, target) pairs misclassified.

Comparisons are paired over the attacked images: the mean difference of per-image success rates (averaged over the
targets) and a bootstrap 95% lower bound (`bootstrap` resamples of the images); a paper claim passes when that lower
bound is > 0 (the difference exceeds the resampling noise). Tolerances are fixed here, before any run.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods import attacks
from jaxlib_methods.optim import csgld
from jaxlib_methods.runner import (Claim, MeshConfig, Paper, make_mesh, replicated, save_figure, scan_steps,
                                   shard_leading, train)
from jaxlib_methods.runner.constraints import Check, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=106, title="Efficient and Transferable Adversarial Examples from Bayesian Neural Networks",
              year=2022, arxiv="2011.05074")
DEMO = False


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  side: Annotated[int, Range(ge=2)] = 8              # images [side, side, 3]
  classes: Annotated[int, Range(ge=2)] = 4
  noise: PositiveFloat = 0.6                         # std of the per-pixel Gaussian noise around a class template
  n_train: PositiveInt = 2048
  n_test: PositiveInt = 1024                          # pool of held-out images (the attacked ones are drawn from it)
  hidden: PositiveInt = 64                            # surrogate width
  target_hidden: PositiveInt = 96                     # held-out target width
  num_surrogates: Annotated[int, Range(ge=2)] = 4     # SGD surrogates (the ensemble of [111] / [115])
  num_targets: PositiveInt = 4
  train_steps: PositiveInt = 1200
  batch_size: PositiveInt = 128
  learning_rate: PositiveFloat = 0.1                  # SGD (surrogates and targets) and cSGLD's initial step
  csgld_cycles: PositiveInt = 4                       # one posterior sample at the end of each cycle
  csgld_samples_used: PositiveInt = 4                 # how many of them the [106] attack cycles through
  csgld_temperature: Annotated[float, Range(ge=0)] = 1.0
  eps: Annotated[float, Range(gt=0, le=1)] = 0.1
  attack_steps: PositiveInt = 10
  num_attack: PositiveInt = 256
  cwa_variant: Literal["cwa", "mifgsm"] = "cwa"       # "mifgsm": a mutation (CWA replaced by its baseline)
  adaea_variant: Literal["adaea", "ens"] = "adaea"    # "ens": a mutation (AdaEA without AGM and DRF)
  bootstrap: Annotated[int, Range(ge=100)] = 2000
  log_every: PositiveInt = 400
  mesh: MeshConfig = MeshConfig()   # devices the SGD surrogates and the targets are split over

  CHECKS = (Check("csgld_samples_used <= csgld_cycles", "the attack cycles through at most the samples collected"),
            Check("train_steps >= csgld_cycles", "each cSGLD cycle has at least one step"),
            Check("csgld_temperature == 0 or -(-train_steps // csgld_cycles) >= 10",
                  "a cSGLD cycle of P = ceil(train_steps / csgld_cycles) steps reaches its sampling stage "
                  "(exploration ratio 0.9: P >= 10), else no posterior noise is ever added"),
            Check("num_attack <= n_test", "the attacked images are drawn from the test pool"),
            Check("batch_size <= n_train", "a minibatch is drawn from the training set"))


PRESETS = {
    "cpu": Config(),
    "gpu": Config(side=16, n_train=16384, n_test=4096, hidden=256, target_hidden=384, num_surrogates=8,
                  num_targets=8, train_steps=6000, batch_size=512, csgld_cycles=8, csgld_samples_used=8,
                  num_attack=2048, log_every=1000),
    "tpu": Config(side=16, n_train=16384, n_test=4096, hidden=256, target_hidden=384, num_surrogates=8,
                  num_targets=8, train_steps=6000, batch_size=512, csgld_cycles=8, csgld_samples_used=8,
                  num_attack=2048, log_every=1000),
}
TINY = ("n_train=512", "n_test=256", "train_steps=200", "log_every=200", "num_attack=128", "bootstrap=500")
# (AdaEA without AGM/DRF and a single cSGLD sample are natural mutations for [115] / [106], but those claims do not
# pass on this toy, so a mutation cannot show them failing: only [111]'s is declared.)
MUTATIONS = {
    "cwa_is_mifgsm": ("cwa_variant=mifgsm",),
}
MUTATION_TEST_SLOW = True   # its TINY harness (surrogates, cSGLD chain, targets) is ~20 s of CPU per run


# ----------------------------------------------------------------------------------------------------------------------
# Data and models.
# ----------------------------------------------------------------------------------------------------------------------

def make_data(config: Config):
  """Seeded images x [n, side, side, 3] in [0, 1] and labels y [n] (train and test pools), float32 NumPy."""
  rng = np.random.default_rng(config.seed)
  s = config.side
  coarse = rng.normal(size=(config.classes, 2, 2, 3))
  templates = 0.5 + 0.3 * np.tanh(np.repeat(np.repeat(coarse, s // 2 + 1, 1), s // 2 + 1, 2)[:, :s, :s, :]
                                  + 0.5 * rng.normal(size=(config.classes, s, s, 3)))

  def draw(n):
    y = rng.integers(0, config.classes, size=n)
    x = np.clip(templates[y] + config.noise * rng.normal(size=(n, s, s, 3)), 0.0, 1.0)
    return x.astype(np.float32), y.astype(np.int32)

  return draw(config.n_train), draw(config.n_test)


def init_mlp(key, d_in, hidden, classes):
  k1, k2 = jax.random.split(key)
  return {"w1": jax.random.normal(k1, (d_in, hidden)) * (1.0 / np.sqrt(d_in)), "b1": jnp.zeros(hidden),
          "w2": jax.random.normal(k2, (hidden, classes)) * (1.0 / np.sqrt(hidden)), "b2": jnp.zeros(classes)}


def mlp(params, x):
  """x [B, side, side, 3] -> logits [B, classes]."""
  h = jnp.tanh(x.reshape(x.shape[0], -1) @ params["w1"] + params["b1"])
  return h @ params["w2"] + params["b2"]


def _loss(params, x, y):
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(mlp(params, x), y))


# ----------------------------------------------------------------------------------------------------------------------
# The run.
# ----------------------------------------------------------------------------------------------------------------------

def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  (x_tr, y_tr), (x_te, y_te) = make_data(config)
  d_in = int(np.prod(x_tr.shape[1:]))
  xtr, ytr = jnp.asarray(x_tr), jnp.asarray(y_tr)
  key = jax.random.key(config.seed)
  k_s, k_t, k_c, k_batch = jax.random.split(key, 4)

  sgd = optax.sgd(config.learning_rate)
  sampler = csgld(config.learning_rate, config.train_steps, config.csgld_cycles, config.n_train,
                  temperature=config.csgld_temperature, seed=config.seed)
  cycle = -(-config.train_steps // config.csgld_cycles)  # P = ceil(K / M), as cyclical_step_size

  surr = jax.vmap(lambda k: init_mlp(k, d_in, config.hidden, config.classes))(
      jax.random.split(k_s, config.num_surrogates))
  targ = jax.vmap(lambda k: init_mlp(k, d_in, config.target_hidden, config.classes))(
      jax.random.split(k_t, config.num_targets))
  chain = init_mlp(k_c, d_in, config.hidden, config.classes)
  state = {"surr": surr, "surr_opt": jax.vmap(sgd.init)(surr), "targ": targ, "targ_opt": jax.vmap(sgd.init)(targ),
           "chain": chain, "chain_opt": sampler.init(chain),
           "samples": jax.tree.map(lambda p: jnp.zeros((config.csgld_cycles,) + p.shape, p.dtype), chain)}
  # The SGD surrogates and the targets (vmapped) train on their own devices; the one cSGLD chain is replicated.
  mesh = make_mesh(config.mesh)
  split = shard_leading({k: state[k] for k in ("surr", "surr_opt", "targ", "targ_opt")}, mesh, what="model")
  state = {k: split[k] if k in split else jax.device_put(v, replicated(mesh)) for k, v in state.items()}

  def sgd_step(p, o, x, y):
    u, o = sgd.update(jax.grad(_loss)(p, x, y), o, p)
    return optax.apply_updates(p, u), o

  def one_step(s, step):
    # One minibatch per model family per step (the same indices for all: equal data budgets).
    idx = jax.random.randint(jax.random.fold_in(k_batch, step), (config.batch_size,), 0, config.n_train)
    x, y = xtr[idx], ytr[idx]
    surr, surr_opt = jax.vmap(sgd_step, in_axes=(0, 0, None, None))(s["surr"], s["surr_opt"], x, y)
    targ, targ_opt = jax.vmap(sgd_step, in_axes=(0, 0, None, None))(s["targ"], s["targ_opt"], x, y)
    u, chain_opt = sampler.update(jax.grad(_loss)(s["chain"], x, y), s["chain_opt"], s["chain"])
    chain = optax.apply_updates(s["chain"], u)
    # The sample of cycle c is the iterate at the cycle's last step (step_size ~ 0 there).
    c = jnp.minimum(step // cycle, config.csgld_cycles - 1)
    last = (step % cycle == cycle - 1) | (step == config.train_steps - 1)
    samples = jax.tree.map(lambda buf, p: jnp.where(last, buf.at[c].set(p), buf), s["samples"], chain)
    return {"surr": surr, "surr_opt": surr_opt, "targ": targ, "targ_opt": targ_opt, "chain": chain,
            "chain_opt": chain_opt, "samples": samples}, None

  advance = scan_steps(one_step)

  xte_j, yte_j = jnp.asarray(x_te), jnp.asarray(y_te)

  def acc(stack):
    return jnp.mean(jax.vmap(lambda p: jnp.mean(jnp.argmax(mlp(p, xte_j), -1) == yte_j))(stack))

  def measure(s, step):
    return {"surrogate_acc": acc(s["surr"]), "target_acc": acc(s["targ"]),
            "csgld_chain_acc": jnp.mean(jnp.argmax(mlp(s["chain"], xte_j), -1) == yte_j),
            "csgld_chain_loss": _loss(s["chain"], xtr, ytr)}

  result = train(workdir=workdir, state=state, advance=advance, measure=measure, num_steps=config.train_steps,
                 log_every=config.log_every, desc="transfer_attacks")
  s = jax.device_get(result.state)

  # Attacked images: test images that every target classifies correctly (success = misclassification).
  unstack = lambda tree, n: [jax.tree.map(lambda a: jnp.asarray(a[i]), tree) for i in range(n)]
  targets = unstack(s["targ"], config.num_targets)
  surrogates = unstack(s["surr"], config.num_surrogates)
  samples = unstack(s["samples"], config.csgld_cycles)[config.csgld_cycles - config.csgld_samples_used:]
  correct = np.all([np.asarray(jnp.argmax(mlp(t, xte_j), -1) == yte_j) for t in targets], axis=0)
  pick = np.flatnonzero(correct)[:config.num_attack]
  xa0, ya = jnp.asarray(x_te[pick]), jnp.asarray(y_te[pick])

  def as_models(params_list):
    return [jax.tree_util.Partial(mlp, p) for p in params_list]

  eps, steps = config.eps, config.attack_steps
  alpha = eps / steps
  beta = 250.0 * np.sqrt(d_in / (224 * 224 * 3))  # the official inner step, scaled to the input dimension
  ens, single, post = as_models(surrogates), as_models(surrogates[:1]), as_models(samples)
  adv = {
      "ifgsm_single_sgd": attacks.ifgsm(single, xa0, ya, eps=eps, step_size=alpha, steps=steps),
      "ifgsm_csgld_cycle": attacks.ifgsm(post, xa0, ya, eps=eps, step_size=alpha, steps=steps, ensemble="cycle"),
      "mifgsm_ens": attacks.ifgsm(ens, xa0, ya, eps=eps, step_size=alpha, steps=steps, momentum=1.0),
      "ifgsm_ens": attacks.ifgsm(ens, xa0, ya, eps=eps, step_size=alpha, steps=steps),
  }
  if config.cwa_variant == "cwa":
    adv["cwa_ens"] = attacks.cwa_attack(ens, xa0, ya, eps=eps, steps=steps, inner_step_size=beta)
  else:
    adv["cwa_ens"] = adv["mifgsm_ens"]
  if config.adaea_variant == "adaea":
    adv["adaea_ens"] = attacks.adaea_attack(ens, xa0, ya, eps=eps, step_size=alpha, steps=steps)
  else:
    adv["adaea_ens"] = attacks.adaea_attack(ens, xa0, ya, eps=eps, step_size=alpha, steps=steps, use_agm=False,
                                            use_drf=False)

  target_models = as_models(targets)
  per_image = {name: np.mean([np.asarray(jnp.argmax(t(xa), -1) != ya, np.float64) for t in target_models], axis=0)
               for name, xa in adv.items()}
  linf = max(float(jnp.max(jnp.abs(xa - xa0))) for xa in adv.values())
  rng = np.random.default_rng(config.seed + 12345)
  boot_idx = rng.integers(0, len(pick), size=(config.bootstrap, len(pick)))

  def compare(a, b):
    d = per_image[a] - per_image[b]
    means = d[boot_idx].mean(axis=1)
    return {"diff": float(d.mean()), "lower95": float(np.quantile(means, 0.05)), "a": float(per_image[a].mean()),
            "b": float(per_image[b].mean())}

  # [111]'s "common weakness" (Chen et al., abstract and Sec. 3): flatness of the ensemble loss around x_adv. Per image,
  # the drop of the surrogate ensemble's mean cross-entropy under random sign perturbations of size eps / 2 (the
  # attack maximises the loss: a flat maximum keeps it), averaged over `num_flat` draws (fixed seed).
  ens_params = surrogates
  flat_key = jax.random.key(config.seed + 111)

  @jax.jit
  def loss_drop(xa):
    def ens_ce(z):
      return jnp.mean(jnp.stack([optax.softmax_cross_entropy_with_integer_labels(mlp(p, z), ya) for p in ens_params]),
                      0)
    base = ens_ce(xa)
    drops = [base - ens_ce(jnp.clip(xa + 0.5 * eps * jax.random.rademacher(
        jax.random.fold_in(flat_key, i), xa.shape, xa.dtype), 0.0, 1.0)) for i in range(8)]
    return jnp.mean(jnp.stack(drops), 0)

  flat = {name: np.asarray(loss_drop(adv[name]), np.float64) for name in ("cwa_ens", "mifgsm_ens")}
  flat_d = flat["mifgsm_ens"] - flat["cwa_ens"]
  flat_means = flat_d[boot_idx].mean(axis=1)

  rows = result.rows
  out = {
      "cwa_flatness": {"diff": float(flat_d.mean()), "lower95": float(np.quantile(flat_means, 0.05)),
                       "cwa_drop": float(flat["cwa_ens"].mean()), "mifgsm_drop": float(flat["mifgsm_ens"].mean())},
      "num_attacked": int(len(pick)),
      "max_linf": linf,
      "success": {k: float(v.mean()) for k, v in per_image.items()},
      "csgld_vs_single": compare("ifgsm_csgld_cycle", "ifgsm_single_sgd"),
      "cwa_vs_mifgsm": compare("cwa_ens", "mifgsm_ens"),
      "adaea_vs_ens": compare("adaea_ens", "ifgsm_ens"),
      "surrogate_acc": float(rows[-1]["surrogate_acc"]),
      "target_acc": float(rows[-1]["target_acc"]),
      "csgld_sample_acc": [float(np.mean(np.asarray(jnp.argmax(mlp(p, xte_j), -1) == yte_j))) for p in samples],
      "eps": eps,
      "resumed_from": result.resumed_from,
  }
  _figure(out, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  c106, c111, c115 = results["csgld_vs_single"], results["cwa_vs_mifgsm"], results["adaea_vs_ens"]
  gain = 1e-9  # the lower bound must be strictly positive (a tie, e.g. the same attack twice, fails)
  return [
      Claim.at_least("[106] I-FGSM cycling through cSGLD samples transfers better than I-FGSM on one SGD surrogate "
                     "(paired bootstrap 95% lower bound of the success-rate gain)", c106["lower95"], gain,
                     paper="gain > 0 on every target (e.g. CIFAR-10, PreResNet110 surrogate)", kind="paper",
                     where="Table 1"),
      Claim.at_least("[111] MI-CWA on the surrogate ensemble transfers better than MI-FGSM on the same ensemble "
                     "(bootstrap 95% lower bound of the gain)", c111["lower95"], gain,
                     paper="gain > 0 (MI-CWA > MI on every target)", kind="paper", where="Table 1"),
      Claim.at_least("[115] AdaEA (AGM + DRF) transfers better than I-FGSM on the equally weighted logit ensemble "
                     "(bootstrap 95% lower bound of the gain)", c115["lower95"], gain,
                     paper="gain > 0 (AdaEA > Ens with I-FGSM)", kind="paper", where="Table 1"),
      Claim.at_least("targets classify the clean test pool well (mean accuracy)", results["target_acc"], 0.8,
                     kind="sanity"),
      Claim.at_least("enough attacked images that every target classifies correctly", results["num_attacked"], 64,
                     kind="sanity"),
      Claim.at_most("every adversarial example is inside the L_inf budget (max |x_adv - x| - eps)",
                    results["max_linf"] - results["eps"], 1e-6, kind="sanity"),
  ]


def _figure(out, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  names = ["ifgsm_single_sgd", "ifgsm_csgld_cycle", "ifgsm_ens", "adaea_ens", "mifgsm_ens", "cwa_ens"]
  vals = [out["success"][n] for n in names]
  fig, ax = plt.subplots(figsize=(8, 3.6))
  ax.bar(range(len(names)), vals, color=["C7", "C0", "C7", "C1", "C7", "C2"])
  ax.set_xticks(range(len(names)), ["I-FGSM\n1 SGD", "I-FGSM\ncSGLD [106]", "I-FGSM\nens", "AdaEA\n[115]",
                                    "MI-FGSM\nens", "MI-CWA\n[111]"])
  ax.set_ylabel("transfer success rate (held-out MLPs)")
  ax.set_title(f"Transfer attacks, eps = {out['eps']:g}: baseline (grey) vs method")
  save_figure(fig, workdir / "figure.png")
