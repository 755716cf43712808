"""serbench: a referee for speech emotion recognition methods.

Plugin authors import from here: ``hookimpl``, the spec classes, ``ConfigError`` for one-line user
errors, and ``components()`` to look up what the installed plugins registered (in tests).
The other public modules are ``serbench.testing`` (conformance checks) and ``serbench.api``
(results as pandas DataFrames).
"""

from typing import TYPE_CHECKING

from serbench.data.digests import file_digests
from serbench.data.folds import check_folds, leave_one_group_out
from serbench.hookspecs import hookimpl
from serbench.specs import (
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

if TYPE_CHECKING:  # pragma: no cover - typing only
    from serbench.registry import Components

__version__ = "0.1.0"


def components() -> "Components":
    """Every installed plugin's components: ``components().upstreams.get("example_mfcc")``;
    ``.origin[name]`` is the plugin that registered ``name``."""
    from serbench.registry import collect

    return collect()


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
    "check_folds",
    "components",
    "file_digests",
    "hookimpl",
    "leave_one_group_out",
    "__version__",
]
