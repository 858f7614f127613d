"""`python -m wassla`: the same as the `wassla` script."""

import sys

from wassla.cli import main

sys.exit(main())
