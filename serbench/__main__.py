"""``python -m serbench``: the CLI, also what ``torchrun ... -m serbench run ...`` starts."""

import sys

from serbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
