"""``python -m serbench.cli``."""

import sys

from serbench.cli.app import main

sys.exit(main())
