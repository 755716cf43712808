"""Plugin manager factory and entry-point loading with per-plugin error capture.

A plugin that fails to import, declares a hook serbench does not have, or takes an entry-point name
another distribution already uses, is recorded against its name and reported; the others still
load and nothing is replaced. The manager is never a global: every caller builds its own.
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import pluggy

from serbench import hookspecs
from serbench.hookspecs import PROJECT

GROUP = "serbench"
HOOKS = tuple(n for n in dir(hookspecs) if n.startswith("serbench_"))


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
    """A loaded plugin manager and what happened while loading.

    ``infos`` is keyed by plugin name; a plugin left out because its entry-point name clashes
    is keyed ``name@distribution`` so that both stay visible.
    """

    pm: pluggy.PluginManager
    infos: dict[str, PluginInfo]

    def failed(self) -> dict[str, str]:
        return {n: i.error for n, i in self.infos.items() if i.error}


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _entry_points() -> list[md.EntryPoint]:
    """serbench's own entry points first, so a stranger's clashing name never replaces one."""
    def key(ep: md.EntryPoint) -> tuple[str, bool, str]:
        dist = ep.dist.name if ep.dist else ""
        return (ep.name, dist != "serbench", dist)

    return sorted(md.entry_points(group=GROUP), key=key)


def make_manager(
    entry_points: bool = True, extra: Iterable[tuple[str, Any]] = ()
) -> Plugins:
    """Build a plugin manager: the ``serbench`` entry points, then ``extra`` (name, module)."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    if entry_points:
        for ep in _entry_points():
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            info = PluginInfo(ep.name, ep.value, version, dist)
            first = infos.get(ep.name)
            if first is not None:
                if first.distribution == dist and first.module == ep.value:
                    continue  # one distribution seen twice on sys.path
                info.error = (f"entry-point name {ep.name!r} of {dist} {version} is already "
                              f"taken by {first.distribution} {first.version}; nothing is "
                              f"replaced: rename it under [project.entry-points.serbench]")
                infos[f"{ep.name}@{dist}"] = info
                continue
            infos[ep.name] = info
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
    """Register ``module``; a misspelt hook or a wrong signature leaves it out, recorded."""
    try:
        pm.register(module, name=name)
    except pluggy.PluginValidationError as exc:
        info.error = f"invalid hook: {' '.join(str(exc).split())}"
        return
    unknown = [hook for hook in dir(pm.hook) if hook.startswith("serbench")
               and not getattr(pm.hook, hook).has_spec()
               and any(i.plugin is module for i in getattr(pm.hook, hook).get_hookimpls())]
    if unknown:
        pm.unregister(module, name=name)
        info.error = "; ".join(_unknown_hook(hook) for hook in unknown)


def _unknown_hook(hook: str) -> str:
    close = difflib.get_close_matches(hook, HOOKS, n=1, cutoff=0.6)
    hint = f": did you mean {close[0]}?" if close else f" (hooks: {', '.join(HOOKS)})"
    return f"unknown hook {hook}{hint}"


def warn_failed(plugins: Plugins) -> None:
    """One stderr line for commands other than ``serbench plugins``: what was left out."""
    failed = [i for i in plugins.infos.values() if i.error]
    if failed:
        names = ", ".join(sorted(f"{i.name} ({i.distribution})" for i in failed))
        print(f"serbench: warning: left out plugin{'s' if len(failed) > 1 else ''} {names} "
              "(run `serbench plugins` to see why)", file=sys.stderr)


def notify_run_finished(plugins: Plugins, record: Mapping[str, Any]) -> None:
    """Call every ``serbench_run_finished`` observer; one that raises is named, the run kept."""
    caller = plugins.pm.hook.serbench_run_finished
    for impl in caller.get_hookimpls():
        try:
            impl.function(result=dict(record))
        except Exception as exc:  # an observer must not lose a run
            print(f"serbench: warning: plugin {impl.plugin_name!r}: serbench_run_finished raised "
                  f"{_describe(exc)}; the run is stored", file=sys.stderr)
