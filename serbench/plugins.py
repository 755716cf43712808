"""Plugin manager factory and entry-point loading with per-plugin error capture.

A plugin that fails to import, or whose registration hook raises, is recorded against its name and
reported; the others still load. The manager is never a global: every caller builds its own.
"""

from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass, field
from typing import Any, Iterable

import pluggy

from . import hookspecs
from .hookspecs import PROJECT

GROUP = "serbench"


@dataclass
class PluginInfo:
    """What ``serbench plugins`` shows for one plugin."""

    name: str
    module: str
    version: str
    distribution: str
    error: str | None = None
    components: list[str] = field(default_factory=list)


@dataclass
class Plugins:
    """A loaded plugin manager and what happened while loading."""

    pm: pluggy.PluginManager
    infos: dict[str, PluginInfo]

    def failed(self) -> dict[str, str]:
        return {n: i.error for n, i in self.infos.items() if i.error}


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def make_manager(
    entry_points: bool = True, extra: Iterable[tuple[str, Any]] = ()
) -> Plugins:
    """Build a plugin manager: the ``serbench`` entry points, then ``extra`` (name, module)."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    if entry_points:
        for ep in sorted(md.entry_points(group=GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            info = PluginInfo(ep.name, ep.value, version, dist)
            infos[ep.name] = info
            if pm.get_plugin(ep.name) is not None:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not stop the others
                info.error = f"failed to import {ep.value}: {_describe(exc)}"
                continue
            _register(pm, ep.name, module, info)
    for name, module in extra:
        info = PluginInfo(name, getattr(module, "__name__", repr(module)), "", "(local)")
        infos[name] = info
        _register(pm, name, module, info)
    return Plugins(pm, infos)


def _register(pm: pluggy.PluginManager, name: str, module: Any, info: PluginInfo) -> None:
    try:
        pm.register(module, name=name)
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        # a misspelt hook name or a wrong signature: loud, never silently ignored
        pm.unregister(module, name=name) if pm.get_plugin(name) else None
        raise PluginLoadError(f"plugin {name!r} ({info.module}): {exc}") from exc


class PluginLoadError(RuntimeError):
    """A plugin declares a hook serbench does not have (e.g. a misspelt name)."""
