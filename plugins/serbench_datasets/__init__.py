"""serbench first-party plugin: datasets (one module per corpus).

Registration builds plain specs only: no audio is read and neither torch nor transformers is
imported until a loader runs.
"""

from __future__ import annotations

from typing import Any, Callable

from serbench import hookimpl

from . import crema_d, emodb, iemocap, manifest, msp_podcast, ravdess


@hookimpl
def serbench_register_datasets(register: Callable[[Any], None]) -> None:
    for module in (emodb, iemocap, ravdess, crema_d, msp_podcast, manifest):
        register(module.spec())
