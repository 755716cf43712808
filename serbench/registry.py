"""Registries of upstreams, methods and datasets: origins, duplicates and did-you-mean."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Generic, Iterator, TypeVar

from serbench.plugins import Plugins, _describe, make_manager
from serbench.specs import ConfigError, DatasetSpec, MethodSpec, UpstreamSpec

T = TypeVar("T")

KINDS = {
    "upstreams": ("serbench_register_upstreams", UpstreamSpec, "upstream"),
    "methods": ("serbench_register_methods", MethodSpec, "method"),
    "datasets": ("serbench_register_datasets", DatasetSpec, "dataset"),
}


class DuplicateName(ConfigError):
    """Two plugins registered a component under one name."""


class UnknownName(ConfigError):
    """A name no plugin registered."""


@dataclass
class Registry(Generic[T]):
    """Components of one kind, each with the plugin it came from."""

    kind: str
    items: dict[str, T] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # plugin -> error, for clear messages

    clashes: dict[str, list[tuple[str, T]]] = field(default_factory=dict)  # name -> every origin

    def add(self, spec: T, plugin: str) -> None:
        """Keep the first of two components with one name; using that name is then refused."""
        name = spec.name  # type: ignore[attr-defined]
        if name in self.items:
            self.clashes.setdefault(name, [(self.origin[name], self.items[name])])
            self.clashes[name].append((plugin, spec))
            return
        self.items[name] = spec
        self.origin[name] = plugin

    def get(self, name: str) -> T:
        if name in self.clashes:
            plugins = " and by ".join(f"plugin {p!r}" for p, _ in self.clashes[name])
            raise DuplicateName(f"{self.kind} {name!r} is registered twice: by {plugins}; "
                                "uninstall one of them (`serbench plugins` lists both)")
        if name in self.items:
            return self.items[name]
        resolved = self.resolve_prefixed(name)
        if resolved is not None:
            return resolved
        hint = ""
        if self.failed:
            broken = ", ".join(f"{p!r} ({e})" for p, e in self.failed.items())
            hint = f"; these plugins failed to load and may provide it: {broken}"
        close = difflib.get_close_matches(name, list(self.items), n=3, cutoff=0.6)
        if close:
            suggestion = " or ".join(repr(c) for c in close)
            raise UnknownName(f"unknown {self.kind} {name!r}: did you mean {suggestion}?{hint}")
        known = ", ".join(sorted(self.items)) or "none"
        raise UnknownName(f"unknown {self.kind} {name!r} (known: {known}){hint}")

    def entries(self) -> Iterator[tuple[str, str, T]]:
        """(name, plugin, spec) of every component, both sides of a clash included."""
        for name in self:
            for plugin, spec in self.clashes.get(name, [(self.origin[name], self.items[name])]):
                yield name, plugin, spec

    def resolve_prefixed(self, name: str) -> T | None:
        """``prefix:rest`` names (``hf:<dir>``, ``s3prl:<name>``) go to a registered factory.

        A factory is registered under ``prefix:`` and is a spec with a ``for_name`` field:
        ``for_name(rest)`` returns the full spec.
        """
        if ":" not in name:
            return None
        prefix = name.split(":", 1)[0] + ":"
        factory = self.items.get(prefix)
        if factory is None:
            return None
        make = getattr(factory, "for_name", None)
        return make(name.split(":", 1)[1]) if make else None

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.items))

    def __contains__(self, name: str) -> bool:
        return name in self.items

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class Components:
    """Every registry, built from one plugin manager."""

    plugins: Plugins
    upstreams: Registry[UpstreamSpec]
    methods: Registry[MethodSpec]
    datasets: Registry[DatasetSpec]

    def registry(self, kind: str) -> Registry[Any]:
        return getattr(self, kind)


def collect(plugins: Plugins | None = None) -> Components:
    """Call every registration hook of every plugin, one plugin at a time.

    A hook that raises, or returns a value instead of calling ``register``, is recorded against
    its plugin (and the components it registered are dropped); two components with one name are
    both kept and that name is refused when used (``Registry.get``).
    """
    plugins = plugins or make_manager()
    failed = plugins.failed()
    regs = {kind: Registry[Any](label, failed=failed) for kind, (_, _, label) in KINDS.items()}
    for name, plugin in plugins.pm.list_name_plugin():
        info = plugins.infos.get(name)
        for kind, (hook_name, cls, label) in KINDS.items():
            caller = getattr(plugins.pm.hook, hook_name)
            impls = [i for i in caller.get_hookimpls() if i.plugin is plugin]
            if not impls:
                continue
            found: list[Any] = []

            def register(spec: Any, _found: list[Any] = found, _cls: type = cls) -> None:
                if not isinstance(spec, _cls):
                    raise TypeError(f"register() expects a {_cls.__name__}, got {spec!r}")
                _found.append(spec)

            error = None
            try:
                for impl in impls:
                    if impl.function(register=register) is not None:
                        error = f"{hook_name} returned a value; call register(spec) instead"
            except Exception as exc:
                error = f"{hook_name} raised {_describe(exc)}"
            if error:
                if info is not None:
                    info.error = error
                failed[name] = error
                continue
            for spec in found:
                regs[kind].add(spec, name)
                if info is not None:
                    info.components.append(f"{label}:{spec.name}")
    return Components(plugins, regs["upstreams"], regs["methods"], regs["datasets"])
