"""Hook specifications: one ``register`` idiom for every kind of component."""

from __future__ import annotations

from typing import Any, Callable

import pluggy

PROJECT = "serbench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def serbench_register_upstreams(register: Callable[[Any], None]) -> None:
    """Call ``register(UpstreamSpec(...))`` once per upstream (audio or text encoder)."""


@hookspec
def serbench_register_methods(register: Callable[[Any], None]) -> None:
    """Call ``register(MethodSpec(...))`` once per method."""


@hookspec
def serbench_register_datasets(register: Callable[[Any], None]) -> None:
    """Call ``register(DatasetSpec(...))`` once per dataset."""


@hookspec
def serbench_register_commands(cli: Any) -> None:
    """Add sub-commands: ``cli.add(name, help, configure, handler)`` (see ``serbench.cli``)."""


@hookspec(firstresult=True)
def serbench_dataset_root(dataset: str) -> Any:
    """Return where ``dataset`` lives on this site (a path), or ``None`` to pass."""


@hookspec
def serbench_run_finished(result: Any) -> None:
    """Observe a finished run (a ``dict`` shaped like ``run.json``): loggers, trackers."""
