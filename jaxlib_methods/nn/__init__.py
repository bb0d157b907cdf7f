"""jaxlib_methods.nn"""

from jaxlib_methods.nn.attention import MultiHeadAttention  # noqa: F401  (issue 5)
from jaxlib_methods.nn.gla import GatedLinearAttention  # noqa: F401  (issue 5)
