"""Generative-sampling ops: diffusion guidance (CFG, APG), a DDIM sampler, speculative decoding, MCMC selection and
noise schedules. One paper family per module."""

from jaxlib_methods.sampling.diffusion import ddim_sample, gaussian_mixture_denoiser
from jaxlib_methods.sampling.guidance import APGState, apg_guidance, apg_init, cfg_guidance, project
from jaxlib_methods.sampling.speculative import (
    lantern_accept,
    lantern_aggregate,
    latent_neighbors,
    speculative_accept,
    speculative_verify,
)
from jaxlib_methods.sampling.mh import mh_gan_acceptance, mh_gan_select
from jaxlib_methods.sampling.noise_schedules import (
    oms_step,
    rescale_zero_terminal_snr,
    scaled_linear_betas,
    terminal_snr,
)
from jaxlib_methods.sampling.noise_policy import beta_noise_policy, reinforce_surrogate
