"""`python -m synthboot.cli`: the same entry point as the `synthboot` script."""

import sys

from synthboot.cli import main

sys.exit(main())
