"""``serbench validate upstream NAME``: the conformance checks of ``serbench.testing``, printed."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from .cli import Cli, print_json


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="validate_kind", metavar="KIND", required=True)
    up = sub.add_parser("upstream", help="load an upstream and check it against its spec",
                        description="Load an upstream and check layer count and shapes, finite "
                        "values, frame lengths, batch versus per-item results and determinism.")
    up.add_argument("name", help="a registered upstream, hf:<hub-id-or-dir> or s3prl:<name>")
    up.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 … (default: auto)")
    up.add_argument("--json", action="store_true", help="print the checks as JSON")


def _validate(args: argparse.Namespace) -> int:
    from .registry import collect
    from .testing import check_upstream

    spec = collect().upstreams.get(args.name)
    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    checks = check_upstream(spec, device=device)
    failed = [c for c in checks if not c.ok]
    if args.json:
        print_json({"upstream": spec.name, "device": device, "ok": not failed,
                    "checks": [asdict(c) for c in checks]})
    else:
        print(f"upstream {spec.name} on {device}")
        for c in checks:
            print(f"{'PASS' if c.ok else 'FAIL'}  {c.name}: {c.detail}")
        print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def add_commands(cli: Cli) -> None:
    cli.add("validate", "check a component against its contract (serbench.testing)", _configure,
            _validate)
