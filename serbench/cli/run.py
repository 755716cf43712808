"""``serbench run``: plan a sweep, print it (``--dry-run``) or execute what is missing."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from serbench.cli.app import Cli
from serbench.data.crosscorpus import add_cross_options, cross_kwargs
from serbench.store import default_results


class Names(argparse.Action):
    """A name flag: repeatable, each value one name or a comma list (``--folds 03,16``).

    Only name flags split on commas; ``--option`` values (``k_values=50,100,200``) never do.
    """

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        have = list(getattr(namespace, self.dest, None) or [])
        for value in values:
            have += [n.strip() for n in value.split(",") if n.strip()]
        setattr(namespace, self.dest, have)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", action=Names, nargs="+", default=[], metavar="M",
                   help="method name; repeat the flag or give a comma list for a grid")
    p.add_argument("--upstream", action=Names, nargs="+", default=[],
                   metavar="U", help="upstream name; repeat the flag or give a comma list")
    p.add_argument("--dataset", metavar="D", help="dataset name")
    p.add_argument("--suite", metavar="FILE",
                   help="a suite YAML (benchmarks/suites/) instead of --method/--upstream/"
                        "--dataset: every plan of it, validated in full before any run; the "
                        "suite's budgets, seeds, folds and options apply")
    p.add_argument("--with-baseline", action="store_true",
                   help="also run each method's declared paired baseline (e.g. contrastive_reg "
                        "with alpha=0) on the same folds and seeds")
    p.add_argument("--data-root", metavar="DIR",
                   help="the corpus folder or a folder holding it (default $SERBENCH_DATA)")
    p.add_argument("--protocol", metavar="P", help="fold protocol (default: the dataset's first)")
    p.add_argument("--budget", default=None, metavar="B",
                   help="budget preset or a name from --budgets (default: the methods' natural "
                        "budget, probe on frozen features, finetune when fine-tuning; smoke "
                        "for a quick test)")
    p.add_argument("--budgets", metavar="FILE", help="YAML file defining more budgets")
    p.add_argument("--seeds", type=_count, default=3, metavar="N",
                   help="seeds 0..N-1 (default 3)")
    p.add_argument("--folds", action=Names, nargs="+", metavar="FOLD",
                   help="only these folds (names or indices); repeat the flag or give a comma "
                        "list: --folds 03,16")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="method option, validated against the method's declared options")
    p.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option (e.g. improvised=true for iemocap)")
    add_cross_options(p)
    p.add_argument("--results", default=None, metavar="DIR",
                   help="results folder (default $SERBENCH_RESULTS, then ./serbench-results)")
    p.add_argument("--device", default=None, help="auto, cpu or cuda[:N] (default: the budget's)")
    p.add_argument("--skip-bad-audio", action="store_true",
                   help="skip unreadable audio with a warning instead of stopping")
    p.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    p.add_argument("--json", action="store_true", help="one JSON object per run on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="run N runs at once in local processes (default 1)")
    p.add_argument("--executor", default="local", metavar="E",
                   help="local (default) or ray: one Ray task per run, with the budget's resources")
    p.add_argument("--address", metavar="ADDR",
                   help="Ray cluster address for --executor ray (default $RAY_ADDRESS, else a "
                        "new local instance)")


def _count(text: str) -> int | str:
    """An integer; anything else is handed on for ``seed_list`` to refuse in one line."""
    try:
        return int(text)
    except ValueError:
        return text


def _check_sources(args: argparse.Namespace) -> None:
    """A sweep comes from --suite or from --method, --upstream and --dataset, never both."""
    from serbench.specs import ConfigError

    if args.suite and (args.method or args.upstream or args.dataset):
        raise ConfigError("--suite replaces --method, --upstream and --dataset; give one or the "
                          "other")
    if args.suite and args.test_dataset:
        raise ConfigError("--test-dataset does not apply to --suite: set test_dataset: in the "
                          "suite file (see docs/cross_corpus.md)")
    if not args.suite and (not args.method or not args.upstream or not args.dataset):
        missing = [f"--{n}" for n in ("method", "upstream", "dataset") if not getattr(args, n)]
        raise ConfigError(f"serbench run needs {', '.join(missing)}")


def _plans(args: argparse.Namespace, components: Any, store: Any) -> list[Any]:
    """The plans of a suite file, or of the command line's sweep (and its paired baselines)."""
    from serbench.options import parse_pairs
    from serbench.run.budgets import load_budget_file, resolve_budget
    from serbench.run.planning import make_plan
    from serbench.run.suites import baseline_groups, load_suite
    from serbench.specs import ConfigError

    if args.suite:
        suite = load_suite(args.suite, components, data_root=args.data_root, store=store,
                           with_baseline=args.with_baseline, skip_bad_audio=args.skip_bad_audio)
        plans = [p.plan for p in suite.plans]
        if not args.json and not args.quiet:
            print("\n".join(suite.summary()), file=sys.stderr)
    else:
        extra = load_budget_file(args.budgets) if args.budgets else {}
        budget = resolve_budget(args.budget, extra) if args.budget else None
        options = parse_pairs(args.option, "--option")
        groups = [(args.method, options)]
        if args.with_baseline:
            found = baseline_groups(components, args.method, options)
            if not found:
                raise ConfigError(f"--with-baseline: none of {', '.join(args.method)} declares "
                                  "a paired baseline")
            groups += [([m], o) for m, o, _ in found]
        plans = [make_plan(
            components, methods=methods, upstreams=args.upstream, dataset=args.dataset,
            data_root=args.data_root, protocol=args.protocol, budget=budget, seeds=args.seeds,
            folds=args.folds, options=opts,
            dataset_options=parse_pairs(args.dataset_option, "--dataset-option"), store=store,
            skip_bad_audio=args.skip_bad_audio, **cross_kwargs(args),
        ) for methods, opts in groups]
    return plans


def handle(args: argparse.Namespace) -> int:
    from serbench.registry import collect
    from serbench.run.executors import is_primary, make_executor
    from serbench.run.preflight import preflight
    from serbench.store import Store

    if args.quiet or args.json:  # model loading bars would drown the one-line-per-run output
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    _check_sources(args)
    executor = make_executor(args.executor, args.workers, args.address)
    if not is_primary():  # torchrun ranks > 0 train silently; rank 0 reports and stores
        args.quiet = True
    components = collect()
    store = Store(args.results or default_results())
    plans = _plans(args, components, store)
    if args.dry_run:
        return _print_plan(plans, args.json)
    preflight(plans)  # an error every run would meet: once, and nothing stored
    total = sum(len(p.runs) for p in plans)
    todo = sum(len(p.todo()) for p in plans)
    if not args.json and not args.quiet:
        budgets = ", ".join(dict.fromkeys(p.budget.name for p in plans))
        print(f"{total} runs planned, {total - todo} already stored, "
              f"{todo} to run (budget {budgets}, results in {store.root})", file=sys.stderr)

    def report(out: dict[str, Any]) -> None:
        if args.json:
            print(json.dumps(out), flush=True)
        elif not args.quiet or out["status"] == "failed":
            print(_line(out), flush=True)

    with _progress(args, plans) as display:
        def show(out: dict[str, Any]) -> None:
            report(out)
            if display is not None:
                display.report(out)

        outcomes = executor.run(plans, store, device=args.device,
                                quiet=args.quiet or args.json, report=show)
    failed = [o for o in outcomes if o["status"] == "failed"]
    if failed and not args.json and is_primary():
        print(f"serbench: {len(failed)} of {len(outcomes)} runs failed; their errors are stored "
              "and running the same command again retries them", file=sys.stderr)
    return 1 if failed else 0


def _progress(args: argparse.Namespace, plans: list[Any]) -> Any:
    """The live display on stderr, or a no-op with --json, --quiet and on torchrun ranks > 0."""
    import contextlib

    from serbench.run.progress import SweepProgress

    if args.json or args.quiet:
        return contextlib.nullcontext()
    runs = [(r.run_id, f"{r.spec.method}/{r.spec.upstream} fold {r.spec.fold} seed {r.spec.seed}")
            for p in plans for r in p.runs]
    sequential = args.executor == "local" and args.workers == 1
    if not sequential:  # the pooled executors run a run id planned twice once
        runs = list(dict(runs).items())
    return SweepProgress(runs, sequential=sequential)


def _line(out: dict[str, Any]) -> str:
    head = (f"{out['method']}/{out['upstream']} {out['dataset']} "
            f"fold {out['fold']} seed {out['seed']}")
    if out["status"] == "failed":
        return f"{head}: FAILED: {out['error']}"
    m = out["metrics"] or {}
    tag = " (already stored)" if out["status"] == "skipped" else ""
    return f"{head}: UAR {m.get('uar', 0):.3f} WAR {m.get('war', 0):.3f}{tag}"


def _print_plan(plans: list[Any], as_json: bool) -> int:
    rows = [
        {"run_id": r.run_id, "status": "stored" if r.done else "to run", "method": r.spec.method,
         "upstream": r.spec.upstream, "dataset": r.spec.dataset, "protocol": r.spec.protocol,
         "fold": r.spec.fold, "seed": r.spec.seed, "budget": r.spec.budget,
         "options": dict(r.spec.options)}
        for plan in plans for r in plan.runs
    ]
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return 0
    from tabulate import tabulate

    print(tabulate([[r["run_id"], r["method"], r["upstream"], r["dataset"], r["fold"], r["seed"],
                     r["status"], " ".join(f"{k}={v}" for k, v in r["options"].items())]
                    for r in rows],
                   headers=["run", "method", "upstream", "dataset", "fold", "seed", "status",
                            "options"]))
    print("\n".join(_estimate_lines(plans)))
    return 0


def _estimate_lines(plans: list[Any]) -> list[str]:
    """What the runs still to do would cost: cache entries to fill against the free space, and
    forward passes and steps (``serbench.run.estimate``, the estimator the pre-flight uses)."""
    from serbench.run.estimate import estimate, human_bytes, plan_cells
    from serbench.run.preflight import cache_fills, free_cache_bytes

    fills = cache_fills(plans)
    lines = [""] + [f"estimate: {line}" for line in estimate(plan_cells(plans)).lines("to run")]
    lines += [f"  cache entry {u} × {d}: about {human_bytes(n)} to fill" for u, d, n in fills]
    lines.append(f"  {human_bytes(sum(n for *_, n in fills))} to fill, "
                 f"{human_bytes(free_cache_bytes())} free where $SERBENCH_CACHE lives")
    return lines


def add_commands(cli: Cli) -> None:
    cli.add("run", "run methods × upstreams on a dataset's folds under one budget", configure,
            handle)
