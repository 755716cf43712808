"""``serbench data stats|download``: check a local corpus copy before spending a GPU-day on it."""

from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

from serbench.specs import ConfigError, DatasetSpec


def corpus_stats(
    spec: DatasetSpec, root: Path, protocol: str | None, options: Mapping[str, Any]
) -> dict[str, Any]:
    """Counts a user compares with the corpus's documentation, and the folds' sizes."""
    from serbench.data.manifests import load_folds, load_utterances

    utterances = load_utterances(spec, root, options)
    folds = load_folds(spec, utterances, protocol, options)

    def counts(values: Any) -> dict[str, int]:
        return dict(sorted(Counter(values).items()))

    return {
        "dataset": spec.name,
        "utterances": len(utterances),
        "labels": counts(u.label for u in utterances),
        "speakers": counts(u.speaker for u in utterances),
        "genders": counts(u.gender or "unknown" for u in utterances),
        "sessions": counts(u.session for u in utterances if u.session),
        "hours": round(sum(u.duration or 0.0 for u in utterances) / 3600, 4),
        "folds": [
            {"fold": f.name, "train": len(f.train), "dev": len(f.dev), "test": len(f.test)}
            for f in folds
        ],
    }


def _stats(args: argparse.Namespace) -> int:
    from serbench.cli.app import print_json
    from serbench.data.manifests import dataset_options, resolve_root
    from serbench.registry import collect

    comps = collect()
    spec = comps.datasets.get(args.name)
    options = dataset_options(spec, args.option)
    root = resolve_root(spec, args.data_root, comps.plugins)
    stats = corpus_stats(spec, root, args.protocol, options)
    if args.json:
        print_json(stats)
        return 0
    from tabulate import tabulate

    protocol = args.protocol or spec.default_protocol
    print(f"{spec.name} at {root} (protocol {protocol})")
    print(f"utterances {stats['utterances']}, speakers {len(stats['speakers'])}, "
          f"hours {stats['hours']:.3f}")
    for key in ("labels", "genders", "sessions", "speakers"):
        if stats[key]:
            print(f"{key}: " + ", ".join(f"{k} {v}" for k, v in stats[key].items()))
    print(tabulate([[f["fold"], f["train"], f["dev"], f["test"]] for f in stats["folds"]],
                   headers=["fold", "train", "dev", "test"]))
    return 0


def download_target(spec: DatasetSpec, data_root: str | None) -> Path:
    """``--data-root`` may be the corpus folder itself or the folder that will hold it."""
    raw = data_root or os.environ.get("SERBENCH_DATA")
    if not raw:
        raise ConfigError(f"where should {spec.name} go? pass --data-root DIR or set SERBENCH_DATA")
    root = Path(raw).expanduser()
    if not spec.dirnames or root.name in spec.dirnames:
        return root
    return root / spec.dirnames[0]


def _download(args: argparse.Namespace) -> int:
    from serbench.data.manifests import load_utterances
    from serbench.registry import collect

    spec = collect().datasets.get(args.name)
    if spec.download is None:
        raise ConfigError(f"{spec.name} cannot be downloaded by serbench: {spec.obtain}")
    target = download_target(spec, args.data_root)
    target.mkdir(parents=True, exist_ok=True)
    spec.download(target)
    n = len(load_utterances(spec, target, spec.options))
    print(f"{spec.name}: {n} utterances in {target}")
    return 0


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    stats = sub.add_parser("stats", help="counts, hours and fold sizes of a local corpus")
    stats.add_argument("name", help="dataset name (see `serbench list datasets`)")
    stats.add_argument("--data-root", help="the corpus folder or the folder holding it "
                                           "(default: $SERBENCH_DATA)")
    stats.add_argument("--protocol", help="fold protocol (default: the dataset's first)")
    stats.add_argument("--option", "--dataset-option", dest="option", action="append",
                       default=[], metavar="KEY=VALUE",
                       help="dataset option, e.g. label_set=full (repeatable)")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(_data=_stats)
    down = sub.add_parser("download", help="fetch an open corpus (emodb, ravdess), verified")
    down.add_argument("name")
    down.add_argument("--data-root", help="where the corpus goes (default: $SERBENCH_DATA)")
    down.set_defaults(_data=_download)


def add_commands(cli: Any) -> None:
    cli.add("data", "inspect (`data stats`) or download (`data download`) a corpus",
            _configure, lambda args: args._data(args))
