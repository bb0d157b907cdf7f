import sys

from jaxlib_methods.runner.cli import configure_compilation_cache, configure_xla_environment, main

configure_xla_environment()  # before jax initialises a backend: see runner/cli.py
configure_compilation_cache()  # before the first compilation: ~/.cache/jaxlib-methods/xla unless set (runner/cli.py)
sys.exit(main())
