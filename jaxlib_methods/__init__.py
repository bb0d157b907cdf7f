"""jaxlib-methods: recent ML papers as pure-functional JAX/Flax code.

Subpackages (one paper family per module):
  optim     optax GradientTransformations (Lion-K, GaLore, Q-GaLore, FRUGAL, ...)
  losses    pure per-example loss functions
  nn        Flax NNX modules
  kernels   Pallas kernels beside their pure-jnp references
  analysis  diagnostics papers measure (sharpness, NTK, ECE, Hutchinson traces, ...)
  data      seeded synthetic data sets
  sampling  diffusion guidance, samplers, speculative decoding, noise schedules
  signal    MRI operators, wavelet packets, Fourier masks
  sketching randomized sketches and sketched least squares
  runner    experiment machinery (config, CLI, train loop, checkpoints, sharding, claims)
  papers    the paper registry (source of docs/PAPERS.md)
"""

__version__ = "0.1.0"
