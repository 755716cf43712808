"""The ``serbench`` command: ``app`` builds the parser and runs it; each command group lives in
its own module (``run``, ``results``, ``report``, ``data``, ``upstream``, ``cache``)."""

from serbench.cli.app import main

__all__ = ["main"]
