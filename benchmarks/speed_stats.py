"""Speed of the leaderboard statistics at IEMOCAP size (target: under 10 s on 2 CPU cores).

    python benchmarks/speed_stats.py                      # 40 conditions × 5 folds × 5 seeds
    python benchmarks/speed_stats.py --folds 1 --seeds 25 # 25 runs of 5,531 test utterances each
    python benchmarks/speed_stats.py --store /tmp/bench   # also through a real results folder

Simulated predictions for ``--conditions`` conditions on one test set of ``--utterances``
utterances from ``--speakers`` speakers (IEMOCAP: 5,531 utterances, 10 speakers, 5 sessions).
Timed: pooling every condition's runs, then the full leaderboard with a baseline (CIs for three
metrics, paired bootstrap, McNemar and Wilcoxon for every marked pair, Holm) and its markdown.
With ``--store`` the runs are also written through ``Store.write`` and the same leaderboard is
built by reading them back, so the cost of reading ``predictions.jsonl`` is reported too (once
parsed, a run's predictions are cached as arrays under ``<results>/.cache/``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from serbench.judge.conditions import Condition, Table, load_tables
from serbench.judge.metrics import compute_metrics
from serbench.judge.ranking import build
from serbench.judge.stats import pool
from serbench.report.render import render
from serbench.run.budgets import PRESETS
from serbench.run.simulate import make_corpus, simulate_predictions, write_condition
from serbench.store import Store, test_set_hash


def simulate(args: argparse.Namespace) -> tuple[object, list[np.ndarray]]:
    rng = np.random.default_rng(args.seed)
    per = np.full(args.speakers, args.utterances // args.speakers)
    per[: args.utterances % args.speakers] += 1
    corpus = make_corpus(rng, n_speakers=args.speakers, per_speaker=per, n_folds=args.folds)
    skills = np.linspace(0.0, 1.0, args.conditions)
    preds = [simulate_predictions(corpus, s, args.seeds, rng) for s in skills]
    return corpus, preds


def in_memory_table(corpus, preds: list[np.ndarray], args: argparse.Namespace) -> Table:
    """Conditions with their index rows and pooled predictions, as read from a store."""
    budget = PRESETS["probe"]
    hashes = [test_set_hash(corpus.keys[corpus.fold == f].tolist()) for f in range(corpus.n_folds)]
    conds = []
    for i, p in enumerate(preds):
        runs = []
        for seed in range(args.seeds):
            for fold in range(corpus.n_folds):
                idx = corpus.fold == fold
                m = compute_metrics(corpus.y_true[idx], p[seed, idx], corpus.labels)
                runs.append({"run_id": f"{i:04d}{seed:03d}{fold:03d}", "fold": str(fold),
                             "seed": seed, "test_hash": hashes[fold], **m})
        conds.append(Condition(Store("unused"), "simulated", "loso_session", {}, budget.name,
                               budget.signature(), f"up{i:02d}", "linear", {}, runs))
    t0 = time.perf_counter()
    n = args.seeds
    for cond, p in zip(conds, preds, strict=True):
        cond.loaded = pool(np.tile(corpus.keys, n), np.tile(corpus.speakers, n),
                           np.tile(corpus.y_true, n), p.ravel(), corpus.labels)
    print(f"pool {len(conds)} conditions × {n * corpus.n_folds} runs: "
          f"{time.perf_counter() - t0:.2f} s")
    return Table("simulated", "loso_session", {}, budget.name, budget.signature(), conds)


def timed_leaderboard(tables: list[Table], args: argparse.Namespace, what: str) -> float:
    t0 = time.perf_counter()
    boards = build(tables, "uar", baseline="linear/up00", n_boot=args.n_boot, seed=0)
    text = render(boards, "md")
    seconds = time.perf_counter() - t0
    rows = sum(len(b.rows) for b in boards)
    print(f"{what}: leaderboard with all tests, {rows} conditions: {seconds:.2f} s "
          f"({len(text.splitlines())} lines of markdown)")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conditions", type=int, default=40)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--utterances", type=int, default=5531)
    ap.add_argument("--speakers", type=int, default=10)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store", type=Path, help="also write and read a results folder here")
    args = ap.parse_args()
    per_run = args.utterances // args.folds
    print(f"{args.conditions} conditions × {args.folds} folds × {args.seeds} seeds, "
          f"{args.utterances} test utterances per seed (~{per_run} per run), "
          f"{args.speakers} speakers, B = {args.n_boot}")
    corpus, preds = simulate(args)
    t0 = time.perf_counter()
    table = in_memory_table(corpus, preds, args)
    stats = timed_leaderboard([table], args, "in memory")
    print(f"total (pooling + statistics): {time.perf_counter() - t0:.2f} s; statistics alone "
          f"{stats:.2f} s; target < 10 s")
    if args.store:
        store = Store(args.store)
        t0 = time.perf_counter()
        for i, p in enumerate(preds):
            write_condition(store, corpus, p, "linear", f"up{i:02d}", protocol="loso_session",
                            budget=PRESETS["probe"])
        print(f"write {args.conditions * args.folds * args.seeds} runs: "
              f"{time.perf_counter() - t0:.2f} s")
        for what in ("first read (parse + checksum)", "cached read"):
            t0 = time.perf_counter()
            tables = load_tables(store)
            for c in tables[0].conditions:
                c.pooled  # noqa: B018  (read and pool every run's predictions)
            print(f"{what} and pool from the store: {time.perf_counter() - t0:.2f} s")
        timed_leaderboard(tables, args, "from the store")


if __name__ == "__main__":
    main()
