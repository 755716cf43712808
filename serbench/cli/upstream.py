"""``serbench validate upstream|method|dataset NAME``: the conformance checks of
``serbench.testing``."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any, Sequence

from serbench.cli.app import Cli, print_json


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="validate_kind", metavar="KIND", required=True)
    up = sub.add_parser("upstream", help="load an upstream and check it against its spec",
                        description="Load an upstream and check layer count and shapes, finite "
                        "values, frame lengths, batch versus per-item results and determinism.")
    up.add_argument("name", help="a registered upstream, hf:<hub-id-or-dir> or s3prl:<name>")
    up.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 … (default: auto)")
    up.add_argument("--json", action="store_true", help="print the checks as JSON")
    me = sub.add_parser("method", help="build a method on synthetic features and check it",
                        description="Build a method on synthetic frozen features and check its "
                        "loss, gradients, scores, masking of padded frames and that it learns.")
    me.add_argument("name", help="a registered method")
    me.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="method option, e.g. text_encoder=minilm")
    me.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 … (default: auto)")
    me.add_argument("--json", action="store_true", help="print the checks as JSON")
    da = sub.add_parser("dataset", help="read a dataset as a run will and check it",
                        description="Load the manifest, check labels against the declared set, "
                        "decode every file, check genders, and check every protocol's folds "
                        "(disjoint, speaker-independent); print the counts.")
    da.add_argument("name", help="a registered dataset")
    da.add_argument("--data-root", metavar="DIR",
                    help="the corpus folder or the folder holding it (default $SERBENCH_DATA)")
    da.add_argument("--option", "--dataset-option", dest="option", action="append", default=[],
                    metavar="KEY=VALUE",
                    help="dataset option (repeatable)")
    da.add_argument("--json", action="store_true", help="print the checks and counts as JSON")


def _validate(args: argparse.Namespace) -> int:
    from serbench.registry import collect
    from serbench.testing import check_method, check_upstream

    kind = args.validate_kind
    if kind == "dataset":
        return _validate_dataset(args)
    from serbench.run.devices import resolve_device

    device = str(resolve_device(args.device))
    if kind == "method":
        from serbench.options import method_options, parse_pairs

        spec = collect().methods.get(args.name)
        options, _ = method_options(spec.name, spec.defaults, parse_pairs(args.option, "--option"))
        checks = check_method(spec, options, device=device)
    else:
        spec = collect().upstreams.get(args.name)
        checks = check_upstream(spec, device=device)
    return _report(args, {kind: spec.name, "device": device}, f"{kind} {spec.name} on {device}",
                   checks)


def _report(args: argparse.Namespace, head: dict[str, Any], title: str, checks: list[Any],
            tail: Sequence[str] = ()) -> int:
    """The checks as PASS / FAIL lines (then ``tail``) or JSON; exit 1 when one failed."""
    failed = [c for c in checks if not c.ok]
    if args.json:
        print_json({**head, "ok": not failed, "checks": [asdict(c) for c in checks]})
    else:
        print(title)
        for c in checks:
            print(f"{'PASS' if c.ok else 'FAIL'}  {c.name}: {c.detail}")
        for line in tail:
            print(line)
        print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def _validate_dataset(args: argparse.Namespace) -> int:
    from serbench.data.manifests import dataset_options, resolve_root
    from serbench.registry import collect
    from serbench.testing import check_dataset

    comps = collect()
    spec = comps.datasets.get(args.name)
    root = resolve_root(spec, args.data_root, comps.plugins)
    checks, counts = check_dataset(spec, root, dataset_options(spec, args.option))
    tail = [f"{counts['utterances']} utterances, {counts['speakers']} speakers"] if counts else []
    for protocol, folds in (counts or {}).get("folds", {}).items():
        sizes = ", ".join(f"{f['fold']} {f['train']}/{f['dev']}/{f['test']}" for f in folds)
        tail.append(f"protocol {protocol} folds (train/dev/test): {sizes}")
    return _report(args, {"dataset": spec.name, "root": str(root), "counts": counts},
                   f"dataset {spec.name} at {root}", checks, tail)


def add_commands(cli: Cli) -> None:
    cli.add("validate", "check a component against its contract (serbench.testing)", _configure,
            _validate)
