"""``serbench report --output DIR``: the leaderboard page and the paper figures, in one folder.

``DIR/index.html`` is the page of ``serbench leaderboard --format html`` (run links relative to
``DIR``); ``DIR/figures/`` holds the PNGs of ``serbench plot`` (needs matplotlib).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from serbench.cli.app import Cli
from serbench.cli.results import _check_stats_options, _results, _stats_options, _store
from serbench.judge.metrics import METRICS
from serbench.specs import ConfigError


def _configure(p: argparse.ArgumentParser) -> None:
    _results(p)
    p.add_argument("--output", metavar="DIR", required=True,
                   help="folder for index.html and figures/ (created if missing)")
    p.add_argument("--dataset", help="only this dataset")
    p.add_argument("--budget", help="only runs under this budget name")
    p.add_argument("--metric", choices=METRICS, default="uar", help="rank by (default uar)")
    p.add_argument("--baseline", metavar="METHOD/UPSTREAM",
                   help="show every condition's difference to this one, with Holm-adjusted p")
    _stats_options(p)


def _report(args: argparse.Namespace) -> int:
    from serbench.judge.conditions import load_tables
    from serbench.judge.ranking import build
    from serbench.report.html import to_html
    from serbench.report.plots import plot_boards

    _check_stats_options(args)
    boards = build(load_tables(_store(args), args.dataset, args.budget), args.metric,
                   args.baseline, args.alpha, args.n_boot, args.seed)
    out = Path(args.output)
    page = out / "index.html"
    try:
        out.mkdir(parents=True, exist_ok=True)
        page.write_text(to_html(boards, link_base=out))
    except OSError as exc:
        raise ConfigError(f"cannot write {page}: {exc.strerror}") from None
    print(page)
    for path in plot_boards(boards, out / "figures"):
        print(path)
    print(f"wrote the report to {out}", file=sys.stderr)
    return 0


def add_commands(cli: Cli) -> None:
    cli.add("report", "write the leaderboard web page and the PNG figures into one folder",
            _configure, _report)
