"""Commands over a results folder: ``leaderboard``, ``compare``, ``plot``, ``results``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from serbench.cli.app import Cli, print_json
from serbench.judge.metrics import METRICS
from serbench.judge.stats import ALPHA, N_BOOT
from serbench.options import check_seed
from serbench.specs import ConfigError
from serbench.store import SCHEMA, default_results


def _results(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default=None, metavar="DIR",
                   help="results folder (default: $SERBENCH_RESULTS, else ./serbench-results)")


def _stats_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--alpha", type=float, default=ALPHA, help="significance level (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    p.add_argument("--n-boot", type=int, default=N_BOOT, metavar="B",
                   help=f"bootstrap replicates (default {N_BOOT})")


def _store(args: argparse.Namespace):  # -> Store
    from serbench.store import Store

    root = Path(args.results or default_results())
    if not root.is_dir():
        raise ConfigError(f"results folder {root} does not exist: run `serbench run ...` first "
                          "or point --results at another folder")
    return Store(root)


def _check_stats_options(args: argparse.Namespace) -> None:
    if not 0 < args.alpha < 1:
        raise ConfigError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.n_boot < 100:
        raise ConfigError(f"--n-boot must be at least 100, got {args.n_boot}")
    check_seed(args.seed, "--seed")


# ------------------------------------------------------------------------------- leaderboard


def _configure_leaderboard(p: argparse.ArgumentParser) -> None:
    from serbench.report.render import FORMATS

    _results(p)
    p.add_argument("--dataset", help="only this dataset")
    p.add_argument("--metric", choices=METRICS, default="uar", help="rank by (default uar)")
    p.add_argument("--budget", help="only runs under this budget name")
    p.add_argument("--baseline", metavar="METHOD/UPSTREAM",
                   help="show every condition's difference to this one, with Holm-adjusted p")
    p.add_argument("--format", choices=FORMATS, default="md", help="output format (default md)")
    p.add_argument("--summary", action="store_true",
                   help="one row per condition: mean UAR and mean rank over the datasets "
                        "(within- and cross-corpus tables) it covers")
    p.add_argument("--suite", metavar="FILE", action="append", default=[],
                   help="also show this suite file's published references (repeat for several; "
                        "runs planned from a suite carry theirs already)")
    p.add_argument("--output", metavar="FILE", help="write to FILE instead of standard output")
    _stats_options(p)


def _leaderboard(args: argparse.Namespace) -> int:
    from serbench.judge.conditions import load_tables
    from serbench.judge.ranking import build
    from serbench.judge.references import attach
    from serbench.report.render import render
    from serbench.run.suites import known

    _check_stats_options(args)
    store = _store(args)
    boards = build(load_tables(store, args.dataset, args.budget), args.metric, args.baseline,
                   args.alpha, args.n_boot, args.seed)
    attach(boards, known(store, boards, args.suite))
    out = Path(args.output) if args.output else None
    extra = {"link_base": out.parent if out else Path.cwd()} if args.format == "html" else {}
    if args.summary:
        from serbench.judge.summary import render as render_summary
        from serbench.judge.summary import summarize

        text = render_summary(summarize(boards), args.format)
    else:
        text = render(boards, args.format, **extra)
    if out is None:
        sys.stdout.write(text)
        return 0
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror}") from None
    print(f"wrote {out}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------- compare


def _configure_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", metavar="A", help="METHOD/UPSTREAM[key=value,...], e.g. linear/fbank")
    p.add_argument("b", metavar="B", help="the condition A is compared with")
    _results(p)
    p.add_argument("--dataset", help="the dataset both ran on (needed when they share several)")
    p.add_argument("--budget", help="the budget both ran under (needed when they share several)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    _stats_options(p)


def _compare(args: argparse.Namespace) -> int:
    from serbench.judge.compare import compare, to_text
    from serbench.report.leaderboard import json_ready

    _check_stats_options(args)
    result = compare(_store(args), args.a, args.b, args.dataset, args.budget, args.alpha,
                     args.n_boot, args.seed)
    if args.json:
        print_json(json_ready(result))
    else:
        print(to_text(result))
    return 0


# ------------------------------------------------------------------------------- plot


def _configure_plot(p: argparse.ArgumentParser) -> None:
    _results(p)
    p.add_argument("--dataset", help="only this dataset")
    p.add_argument("--budget", help="only runs under this budget name")
    p.add_argument("--metric", choices=METRICS, default="uar", help="metric to plot (default uar)")
    p.add_argument("--output", metavar="DIR", default="serbench-plots",
                   help="folder for the PNG files (default ./serbench-plots)")
    _stats_options(p)


def _plot(args: argparse.Namespace) -> int:
    from serbench.judge.conditions import load_tables
    from serbench.judge.ranking import build
    from serbench.report.plots import plot_boards

    _check_stats_options(args)
    boards = build(load_tables(_store(args), args.dataset, args.budget), args.metric,
                   alpha=args.alpha, n_boot=args.n_boot, seed=args.seed)
    for path in plot_boards(boards, Path(args.output)):
        print(path)
    return 0


# ------------------------------------------------------------------------------- results


def _configure_results(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="results_command", metavar="ACTION", required=True)
    rebuild = sub.add_parser("rebuild-index", help="re-create serbench.db from the run folders",
                             description="Re-create serbench.db from the run folders.")
    _results(rebuild)
    migrate = sub.add_parser("migrate", help="bring runs of older results schemas up to date",
                             description="Rewrite run.json files of older results schemas in "
                             "place (schema 1 runs get no data fingerprint and are paired by test "
                             "set only), then rebuild the index.")
    _results(migrate)


def _results_command(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.results_command == "migrate":
        n = store.migrate()
        print(f"migrated {n} runs in {store.root} to results schema {SCHEMA}")
        return 0
    n = store.rebuild_index()
    print(f"indexed {n} runs in {store.db_path}")
    return 0


def add_commands(cli: Cli) -> None:
    cli.add("leaderboard", "rank conditions per dataset and budget, with CIs and paired tests",
            _configure_leaderboard, _leaderboard)
    cli.add("compare", "compare two conditions on the same test set: paired tests and a verdict",
            _configure_compare, _compare)
    cli.add("plot", "plot metrics with CIs, confusion matrices and per-speaker UAR (PNG)",
            _configure_plot, _plot)
    cli.add("results", "manage a results folder (rebuild-index, migrate)", _configure_results,
            _results_command)
