"""``python -m serbench``: the CLI, also what ``torchrun ... -m serbench run ...`` starts."""

import sys

from .cli import main

sys.exit(main())
