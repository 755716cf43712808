"""serbench first-party plugin: datasets (one module per corpus).

Registration builds plain specs only: no audio is read and neither torch nor transformers is
imported until a loader runs.
"""

from __future__ import annotations

from typing import Any, Callable

from serbench.hookspecs import hookimpl

from . import emodb


@hookimpl
def serbench_register_datasets(register: Callable[[Any], None]) -> None:
    register(emodb.spec())
