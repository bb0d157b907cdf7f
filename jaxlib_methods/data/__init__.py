"""Seeded synthetic data sets shared by the experiments (no downloads)."""

from jaxlib_methods.data.gaussian_mixture import (
    GaussianMixture,
    gaussian_mixture_log_density,
    gaussian_mixture_posterior,
    gaussian_mixture_score,
    make_gaussian_mixture,
    overlapping_classes,
    sample_gaussian_mixture,
)
from jaxlib_methods.data.modular import SplitDataset, modular_arithmetic
from jaxlib_methods.data.power_law import PowerLawTask, power_law_task, sample_power_law
from jaxlib_methods.data.synthetic_language import (
    MarkovLanguage,
    entropy_rate,
    random_markov_language,
    sample_markov_sequences,
)
from jaxlib_methods.data.regression import RegressionTask, hermite, teacher_student
# ---- theory2 (issue 17: low-rank matrices for matrix completion [101]) ----
from jaxlib_methods.data.low_rank import low_rank_matrix, observation_mask
