"""`python -m tinygrad_lite` runs the `tinygrad-lite` command."""

import sys

from tinygrad_lite.cli import main

sys.exit(main())
