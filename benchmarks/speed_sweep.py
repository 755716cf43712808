"""Wall time of a suite with ``--workers N`` against ``--workers 1`` on this machine.

    python benchmarks/speed_sweep.py --data-root ../shared/data            # the whole EmoDB suite
    python benchmarks/speed_sweep.py --data-root ../shared/data --folds 2  # its first two folds

Each mode runs the same runs into its own fresh results folder. The feature caches are filled first
(unless ``--cold``, which gives each mode its own empty cache, so the workers also fill the caches
of different upstreams at once). Besides the speed-up it prints the workers' utilisation: the sum
of the runs' own durations over ``wall time × workers``; a store or a cache that serialised the
workers would show up as low utilisation, not only as a poor ratio.

``--workers N`` gives each worker ``cores / N`` intra-op threads, while one process uses torch's
default (all cores). ``--serial-threads 1`` runs the one-process mode with the workers' thread
count, which separates the gain of running runs side by side from the cost of intra-op threads
(on a machine busy with other work, two threads per run can be far slower than one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _plans(suite: Path, data_root: str | None, folds: int | None) -> list[Any]:
    from serbench.registry import collect
    from serbench.run.suites import load_suite

    plans = [p.plan for p in load_suite(suite, collect(), data_root=data_root).plans]
    if folds:
        for plan in plans:
            keep = list(plan.dataset.folds)[:folds]
            plan.runs = [r for r in plan.runs if r.spec.fold in keep]
    return plans


def _warm(plans: list[Any]) -> None:
    """Fill the feature cache of every frozen upstream the plans use (timed apart)."""
    import torch

    from serbench.data.features import cached_features

    done = set()
    for plan in plans:
        for run in plan.runs:
            cond = run.condition
            key = (cond.upstream.name, plan.dataset.spec.name)
            if key in done or cond.method.finetunes(cond.options):
                continue
            done.add(key)
            cached_features(cond.upstream, plan.dataset.spec.name, plan.dataset.root,
                            plan.dataset.utterances, torch.device("cpu"), quiet=True)


def _sweep(plans: list[Any], workers: int, results: Path) -> dict[str, Any]:
    import torch

    from serbench.run.executors import LocalExecutor
    from serbench.store import Store

    store = Store(results)
    start = time.perf_counter()
    outcomes = LocalExecutor(workers).run(plans, store, device="cpu", quiet=True)
    wall = time.perf_counter() - start
    records = [store.read_record(o["run_id"]) for o in outcomes]
    busy = sum(r.get("duration_seconds") or 0.0 for r in records)
    return {
        "workers": workers, "runs": len(outcomes), "wall_seconds": round(wall, 1),
        "threads_per_run": torch.get_num_threads() if workers == 1 else
        max(1, (os.cpu_count() or 1) // workers),
        "failed": sum(o["status"] == "failed" for o in outcomes),
        "utilisation": round(busy / (wall * workers), 3),
        "uar": {o["run_id"]: (o["metrics"] or {}).get("uar") for o in outcomes},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", default=str(REPO / "benchmarks" / "suites" / "emodb.yaml"))
    p.add_argument("--data-root", default=os.environ.get("SERBENCH_DATA"))
    p.add_argument("--folds", type=int, help="only the first N folds of every plan")
    p.add_argument("--workers", type=int, default=2, help="the parallel mode (default 2)")
    p.add_argument("--cold", action="store_true", help="each mode starts from an empty cache")
    p.add_argument("--serial-threads", type=int, metavar="K",
                   help="intra-op threads of the one-process mode (default: torch's)")
    p.add_argument("--json", action="store_true", help="print the measurements as JSON")
    args = p.parse_args(argv)

    if args.serial_threads:
        import torch

        torch.set_num_threads(args.serial_threads)
    base = Path(tempfile.mkdtemp(prefix="serbench-speed-"))
    os.environ.setdefault("SERBENCH_CACHE", str(base / "cache"))
    plans = _plans(Path(args.suite), args.data_root, args.folds)
    warm = 0.0
    if not args.cold:
        t0 = time.perf_counter()
        _warm(plans)
        warm = time.perf_counter() - t0
    rows = []
    for workers in (1, args.workers):
        if args.cold:
            os.environ["SERBENCH_CACHE"] = str(base / f"cache-{workers}")
        rows.append(_sweep(plans, workers, base / f"results-{workers}"))
    one, many = rows
    ratio = one["wall_seconds"] / many["wall_seconds"]
    same = [a for a in one["uar"] if one["uar"][a] is not None and many["uar"].get(a) is not None]
    drift = max((abs(one["uar"][a] - many["uar"][a]) for a in same), default=0.0)
    summary = {"suite": args.suite, "runs": one["runs"], "cache": "cold" if args.cold else "warm",
               "cache_fill_seconds": round(warm, 1), "cpus": os.cpu_count(),
               "modes": [{k: v for k, v in r.items() if k != "uar"} for r in rows],
               "speedup": round(ratio, 2), "max_uar_difference": drift}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for r in summary["modes"]:
            print(f"--workers {r['workers']} ({r['threads_per_run']} threads per run): "
                  f"{r['runs']} runs in {r['wall_seconds']} s ({r['failed']} failed), "
                  f"utilisation {r['utilisation']:.0%}")
        print(f"speed-up with --workers {args.workers}: {ratio:.2f}x on {os.cpu_count()} CPUs "
              f"({summary['cache']} cache; largest UAR difference {drift:.2g})")
    return 0 if not any(r["failed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
