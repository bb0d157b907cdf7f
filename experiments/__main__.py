import sys

from jaxlib_methods.runner.cli import main

sys.exit(main())
