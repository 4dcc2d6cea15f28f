"""`python -m mailfax`: the same command tree as the `mailfax` script."""

import sys

from mailfax.cli import main

# Guarded: extraction workers (mailfax.smtp.extraction) import the main module again.
if __name__ == "__main__":
    sys.exit(main())
