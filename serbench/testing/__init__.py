"""Conformance checks for plugin authors, runnable from any test runner (no pytest needed):
``check_upstream``, ``check_method`` and ``check_dataset`` return a list of :class:`Check`, each
named, passed or not, with a reason; ``serbench validate`` prints them. ``tiny_transformers_model``
writes a randomly initialised tiny Hugging Face model folder for loader tests.
"""

from serbench.testing.checks import Check, sample_audio
from serbench.testing.datasets import check_dataset
from serbench.testing.methods import check_method
from serbench.testing.tiny import tiny_transformers_model
from serbench.testing.upstreams import check_upstream

__all__ = ["Check", "check_dataset", "check_method", "check_upstream", "sample_audio",
           "tiny_transformers_model"]
