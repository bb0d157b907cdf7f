"""Conditional-GAN classifier losses: ADC-GAN's auxiliary discriminative classifier.

Paper:
  [173] Liang Hou, Qi Cao, Huawei Shen, Siyuan Pan, Xiaoshuang Li, Xueqi Cheng, "Conditional GANs with Auxiliary
        Discriminative Classifier", ICML 2022, arXiv:2107.10060 (Sec. 3, Eqs. (8)-(9); official code liang-hou/adcgan
        `train_fns.py`, loss 'adcgan').

The classifier has 2K outputs on the discriminator's features: a "real class y" and a "fake class y" for each of the K
classes. As in the official code they are interleaved: index 2y is (real, y) and 2y + 1 is (fake, y). The GAN's own
adversarial loss is separate (any GAN loss); the paper's objectives add lambda times these per-example terms:

  discriminator:  lambda * [ -log C(2y | x_real)  (real data)   -log C(2y + 1 | x_fake)  (generated data) ]
  generator:      lambda * [ -log C(2y | G(z, y)) + log C(2y + 1 | G(z, y)) ]

AC-GAN, the baseline, is the plain K-way cross-entropy on real data (discriminator) and generated data (generator):
`softmax_cross_entropy_with_integer_labels`.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


def _adc_inputs(logits: Any, labels: Any, axis: Any, where: Any):
  logits = validation.check_floating(logits, "logits")
  if logits.ndim < 1:
    raise ValueError(f"logits must have a class axis of 2K entries, got logits.shape={logits.shape}")
  ax = validation.check_axis(axis, logits.ndim)
  z = jnp.moveaxis(logits, ax, -1)
  two_k = z.shape[-1]
  if two_k < 2 or two_k % 2:
    raise ValueError(f"logits must have 2K >= 2 entries along axis {axis} ((real, y) at 2y, (fake, y) at 2y + 1), "
                     f"got logits.shape={logits.shape}")
  labels = validation.check_integer(labels, "labels")
  if labels.shape != z.shape[:-1]:
    raise ValueError(f"labels must have the shape of logits without its class axis, {z.shape[:-1]}; got "
                     f"labels.shape={labels.shape}")
  where = validation.check_where(where, labels.shape)
  valid = validation.check_labels(labels, two_k // 2, "labels", where)
  dtype = z.dtype
  zc = z.astype(validation.compute_dtype_for(dtype))
  if where is not None:
    zc = jnp.where(where[..., None], zc, jnp.zeros((), zc.dtype))
  y = jnp.clip(labels, 0, two_k // 2 - 1)
  return zc, y, where, valid, dtype


def _pick(z: jax.Array, idx: jax.Array) -> jax.Array:
  return jnp.take_along_axis(z, idx[..., None], axis=-1)[..., 0]


def adc_discriminator_loss(logits: jax.Array, labels: jax.Array, *, real: bool, axis: int = -1,
                           where: Optional[jax.Array] = None) -> jax.Array:
  """ADC-GAN's discriminator-side classifier loss, per example (Hou et al., "Conditional GANs with Auxiliary
  Discriminative Classifier", ICML 2022, arXiv:2107.10060, Eq. (8)).

  -log C(2y | x) for real data (`real=True`), -log C(2y + 1 | x) for generated data, with C the softmax over the 2K
  outputs (interleaved as in the official code: 2y = (real, y), 2y + 1 = (fake, y)). The discriminator minimises
  its GAN loss + lambda * (mean over the real batch + mean over the generated batch).

  Args:
    logits: [..., 2K] classifier logits on the discriminator's features (class axis `axis`).
    labels: [...] int class y in [0, K) (the data's label, or the label the generator was conditioned on).
    real: True for a batch of real data, False for generated data (a Python bool).
    axis: the class axis of `logits`.
    where: optional [...] bool mask of the examples to score (excluded: 0 loss and gradient, labels unchecked).

  Returns:
    [...] per-example losses (logits' dtype; half precision computed in float32).
  """
  if not isinstance(real, bool):
    raise TypeError(f"real must be a Python bool (True: real data, False: generated), got real={real!r}")
  z, y, where, valid, dtype = _adc_inputs(logits, labels, axis, where)
  loss = -_pick(jax.nn.log_softmax(z, axis=-1), 2 * y + (0 if real else 1))
  return validation.finish_per_example(loss, valid, where, dtype)


def adc_generator_loss(logits: jax.Array, labels: jax.Array, *, axis: int = -1,
                       where: Optional[jax.Array] = None) -> jax.Array:
  """ADC-GAN's generator-side classifier loss, per generated example (Hou et al., "Conditional GANs with Auxiliary
  Discriminative Classifier", ICML 2022, arXiv:2107.10060, Eq. (9); official `G_adc_loss_pos - G_adc_loss_neg`).

    -log C(2y | G(z, y)) + log C(2y + 1 | G(z, y)) = logit_{2y+1} - logit_{2y}

  (the softmax normaliser cancels). At the optimal classifier C(2y | x) / C(2y + 1 | x) = p(x, y) / q(x, y), so its
  expectation is KL(q(x, y) || p(x, y)): the generator matches the joint distribution, not just the class posterior
  (AC-GAN's generator loss -log C(y | x) lowers the conditional entropy instead, which shrinks intra-class
  diversity). The generator minimises its GAN loss + lambda * the mean of this.

  Args:
    logits: [..., 2K] classifier logits on the discriminator's features of generated samples.
    labels: [...] int class y in [0, K) each sample was generated for.
    axis: the class axis of `logits`.
    where: optional [...] bool mask of the examples to score.

  Returns:
    [...] per-example losses (logits' dtype; half precision computed in float32). Unbounded below.
  """
  z, y, where, valid, dtype = _adc_inputs(logits, labels, axis, where)
  loss = _pick(z, 2 * y + 1) - _pick(z, 2 * y)
  return validation.finish_per_example(loss, valid, where, dtype)
