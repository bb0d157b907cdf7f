import sys

from jaxlib_methods.runner.cli import configure_xla_environment, main

configure_xla_environment()  # before jax initialises a backend: see runner/cli.py
sys.exit(main())
