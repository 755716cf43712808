"""serbench: a referee for speech emotion recognition methods.

Plugin authors import from here: ``hookimpl`` and the spec classes.
"""

from .hookspecs import hookimpl
from .specs import (
    GENDERS,
    Batch,
    Budget,
    BuildContext,
    ConfigError,
    DatasetSpec,
    Fold,
    MethodSpec,
    RunSpec,
    Stage,
    UpstreamSpec,
    Utterance,
)

__version__ = "0.1.0"

__all__ = [
    "GENDERS",
    "Batch",
    "Budget",
    "BuildContext",
    "ConfigError",
    "DatasetSpec",
    "Fold",
    "MethodSpec",
    "RunSpec",
    "Stage",
    "UpstreamSpec",
    "Utterance",
    "hookimpl",
    "__version__",
]
