"""`python -m mailfax`: the same command tree as the `mailfax` script."""

import sys

from mailfax.cli import main

sys.exit(main())
