"""``serbench cache ls|clear``: the feature cache of frozen upstreams, listed and emptied."""

from __future__ import annotations

import argparse
from typing import Any

from serbench.cli.app import Cli, print_json


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover - loop always returns


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    ls = sub.add_parser("ls", help="list cached features: upstream, dataset, size, status",
                        description="List the feature cache's entries ($SERBENCH_CACHE/features).")
    ls.add_argument("--json", action="store_true", help="print the entries as JSON")
    clear = sub.add_parser("clear", help="delete cached features (all, or those matching)",
                           description="Delete feature cache entries and leftovers of killed "
                           "fills; entries being filled right now are left alone.")
    clear.add_argument("--upstream", metavar="U", help="only this upstream's entries")
    clear.add_argument("--dataset", metavar="D", help="only this dataset's entries")
    clear.add_argument("--json", action="store_true", help="print the removed entries as JSON")


def _handle(args: argparse.Namespace) -> int:
    from serbench.data.features import cache_root, clear_entries, list_entries

    if args.cache_command == "ls":
        rows = list_entries()
        if args.json:
            print_json(rows)
            return 0
        if not rows:
            print(f"the feature cache is empty ({cache_root() / 'features'})")
            return 0
        from tabulate import tabulate

        table = [[r["upstream"], r["dataset"] or "?", r["utterances"],
                  f"{r['layers']} x {r['dim']}" if r["layers"] else "?", _frames(r),
                  _size(r["bytes"]), r["status"], r["created"] or "", r["path"]] for r in rows]
        print(tabulate(table, headers=["upstream", "dataset", "utterances", "layers x dim",
                                       "frames of", "size", "status", "created", "path"]))
        total = sum(r["bytes"] for r in rows)
        print(f"{len(rows)} entries, {_size(total)}")
        return 0
    removed = clear_entries(args.upstream, args.dataset)
    if args.json:
        print_json(removed)
        return 0
    what = " and ".join(f"{k} {v!r}" for k, v in (("upstream", args.upstream),
                                                   ("dataset", args.dataset)) if v)
    print(f"removed {len(removed)} entries ({_size(sum(r['bytes'] for r in removed))})"
          + (f" of {what}" if what else ""))
    return 0


def _frames(row: dict[str, Any]) -> str:
    """Which layers' frames an entry holds: ``none`` (pooled statistics only), ``all`` or a list."""
    layers = row.get("frame_layers")
    if layers is None:
        return "?"
    if not layers:
        return "none"
    return "all" if len(layers) == row["layers"] else ",".join(map(str, layers))


def add_commands(cli: Cli) -> None:
    cli.add("cache", "list or clear the feature cache of frozen upstreams", _configure, _handle)
