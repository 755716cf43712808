"""The ``serbench`` command.

Every command reports a bad input as one line (``serbench: error: ...``) and exits 2; ``--debug``
shows the traceback instead. Command groups live in their own modules and add themselves here
through the same ``Cli.add`` a plugin's ``serbench_register_commands`` hook uses.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any, Callable, Sequence

from serbench.specs import error_line

EXIT_ERROR = 2


class Cli:
    """The sub-command table: ``add(name, help, configure, handler)``."""

    def __init__(self, subparsers: Any) -> None:
        self._sub = subparsers
        self.handlers: dict[str, Callable[[argparse.Namespace], int | None]] = {}

    def add(
        self,
        name: str,
        help: str,
        configure: Callable[[argparse.ArgumentParser], None],
        handler: Callable[[argparse.Namespace], int | None],
    ) -> argparse.ArgumentParser:
        parser = self._sub.add_parser(name, help=help, description=help)
        configure(parser)
        parser.set_defaults(_handler=handler)
        self.handlers[name] = handler
        return parser


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False, default=str))


# ------------------------------------------------------------------------------------ listings


def _plugins(args: argparse.Namespace) -> int:
    import textwrap

    from serbench.registry import collect
    from serbench.report.terminal import fit_table, width

    comps = collect()
    rows = [
        {
            "name": i.name,
            "module": i.module,
            "distribution": i.distribution,
            "version": i.version,
            "status": "error" if i.error else "ok",
            "error": i.error,
            "components": i.components,
        }
        for i in comps.plugins.infos.values()
    ]
    clashes = [f"{reg.kind} {name!r} is registered by "
               + " and ".join(repr(p) for p, _ in reg.clashes[name])
               for kind in ("upstreams", "methods", "datasets")
               for reg in [comps.registry(kind)] for name in sorted(reg.clashes)]
    if args.json:
        print_json(rows)
        return 0

    def summary(components: list[str]) -> str:
        by_kind: dict[str, list[str]] = {}
        for c in components:
            kind, name = c.split(":", 1)
            by_kind.setdefault(kind, []).append(name)
        return "; ".join(f"{len(names)} {kind}{'s' if len(names) > 1 else ''}"
                         + (f": {', '.join(names)}" if args.verbose else "")
                         for kind, names in by_kind.items())

    table = [[r["name"], r["distribution"], r["version"], r["status"],
              r["error"] or summary(r["components"])] for r in rows]
    print(fit_table(table, ["plugin", "package", "version", "status", "components / error"],
                    wrap=[4]))
    for line in clashes:
        print(textwrap.fill(f"clash: {line}; commands that use this name refuse it", width(),
                            subsequent_indent="  "))
    if not args.verbose:
        print("(-v names every component; --json gives everything)")
    return 0


def _first_line(text: str) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def describe_components(kind: str) -> list[dict[str, Any]]:
    """Rows for ``serbench list KIND``: name, plugin of origin, one-line description, details."""
    from serbench.run.budgets import DESCRIPTIONS, PRESETS

    if kind == "budgets":
        from dataclasses import asdict

        return [
            {"name": n, "plugin": "serbench", "description": DESCRIPTIONS.get(n, ""), **asdict(b)}
            for n, b in PRESETS.items()
        ]
    from serbench.registry import collect

    comps = collect()
    reg = comps.registry(kind)
    rows = []
    for name, plugin, spec in reg.entries():
        row: dict[str, Any] = {
            "name": name,
            "plugin": plugin,
            "description": _first_line(spec.description),
        }
        if kind == "methods":
            row.update(
                requires=sorted(spec.requires),
                finetunes_upstream=spec.finetunes_upstream,
                inputs=spec.inputs,
                options=dict(spec.defaults),
                stages=[{"name": s.name, "share": s.share} for s in spec.stages],
            )
        elif kind == "upstreams":
            row.update(
                modality=spec.modality, sample_rate=spec.sample_rate, num_layers=spec.num_layers,
                hidden_size=spec.hidden_size, frame_rate=spec.frame_rate, revision=spec.revision,
                source=spec.source,
            )
        elif kind == "datasets":
            row.update(
                labels=list(spec.labels), protocols=dict(spec.protocols),
                options=dict(spec.options),
                has_text=spec.has_text, has_gender=spec.has_gender, licence=spec.licence,
                downloadable=spec.download is not None,
            )
        rows.append(row)
    return rows


def _list(args: argparse.Namespace) -> int:
    from serbench.report.terminal import fit_table

    rows = describe_components(args.kind)
    if args.json:
        print_json(rows)
        return 0
    if args.kind == "methods":
        table = [[r["name"], r["plugin"], _options_text(r["options"]), r["description"]]
                 for r in rows]
        print(fit_table(table, ["method", "plugin", "options (defaults)", "description"],
                        wrap=[2, 3]))
        return 0
    print(fit_table([[r["name"], r["plugin"], r["description"]] for r in rows],
                    [args.kind[:-1], "plugin", "description"], wrap=[2]))
    return 0


def _options_text(options: dict[str, Any]) -> str:
    return " ".join(f"{k}={_value_text(v)}" for k, v in options.items())


def _value_text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "none"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return repr(value) if isinstance(value, str) and " " in value else str(value)


# ------------------------------------------------------------------------------------ parser


def build_parser() -> tuple[argparse.ArgumentParser, Cli]:
    parser = argparse.ArgumentParser(
        prog="serbench",
        description="Benchmark speech emotion recognition methods under equal budgets.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    cli = Cli(sub)
    def configure_plugins(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="every field, as JSON")
        p.add_argument("-v", "--verbose", action="store_true", help="name every component")

    cli.add("plugins", "list installed plugins, their components and load errors",
            configure_plugins, _plugins)

    def configure_list(p: argparse.ArgumentParser) -> None:
        p.add_argument("kind", choices=["upstreams", "methods", "datasets", "budgets"])
        p.add_argument("--json", action="store_true")

    cli.add("list", "list registered components with their plugin of origin", configure_list, _list)
    for module in _COMMAND_MODULES:
        _import_commands(module, cli)
    return parser, cli


_COMMAND_MODULES = (
    "serbench.cli.run",
    "serbench.cli.results",
    "serbench.cli.report",
    "serbench.cli.data",
    "serbench.cli.upstream",
    "serbench.cli.cache",
)


def _import_commands(module: str, cli: Cli) -> None:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:  # not written yet in this checkout
            return
        raise
    mod.add_commands(cli)


def _plugin_commands(cli: Cli) -> Any:
    """Let plugins add sub-commands; returns the plugin manager for the load warning."""
    from serbench.plugins import make_manager

    plugins = make_manager()
    plugins.pm.hook.serbench_register_commands(cli=cli)
    return plugins


def _warn_left_out(plugins: Any) -> None:
    """Every command but ``serbench plugins`` ends with one line naming the plugins left out."""
    from serbench.plugins import warn_failed
    from serbench.registry import collect

    warn_failed(collect(plugins).plugins)


def _version() -> str:
    from serbench import __version__

    return f"serbench {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    own_process = argv is None  # the command itself, not a caller in Python
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser, cli = build_parser()
        plugins = _plugin_commands(cli)
        args = parser.parse_args(argv)
        if not getattr(args, "_handler", None):
            parser.print_help()
            return EXIT_ERROR
        code = int(args._handler(args) or 0)
        if args.command != "plugins":  # after the output: an error stays one line
            _warn_left_out(plugins)
        return code
    except KeyboardInterrupt as exc:  # Ctrl-C: one line, no traceback, however often it is pressed
        if own_process:  # only exiting is left to do
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(f"serbench: interrupted{f': {exc}' if str(exc) else ''}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `serbench ... | head`: the reader left, which is not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # one line for the user, the traceback only with --debug
        if debug:
            raise
        print(f"serbench: error: {error_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if own_process:  # the command is done: a Ctrl-C now would only break Python's exit
            signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
