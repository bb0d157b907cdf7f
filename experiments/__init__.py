"""One module per reproduced paper; run them with `python -m experiments` (see jaxlib_methods.runner)."""
