"""serbench's ``logreg`` against scikit-learn's LogisticRegression on the same features and folds.

    nice python benchmarks/logreg_vs_sklearn.py --data-root /work/shared/data

Both sides read the same pooled, normalised features (the harness's ``CachedFeed`` of each fold)
and choose ``C`` from the same grid by dev UAR (ties: the smaller C). serbench's side is the real
run (``execute_run``: the budgeted loop, L-BFGS one iteration per step); scikit-learn's is
``LogisticRegression(C, lbfgs, tol=1e-8, max_iter=10000)``, which solves the same convex problem to
its minimum. Printed per fold: the C each picked, test UAR, and how many test predictions agree;
then pooled UAR over all folds, and scikit-learn at a fixed C = 0.1 for reference.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.linear_model import LogisticRegression

from serbench.data.features import cached_features
from serbench.data.feeds import CachedFeed
from serbench.judge.metrics import compute_metrics
from serbench.registry import collect
from serbench.run.devices import resolve_device
from serbench.run.execution import execute_run
from serbench.run.planning import make_plan


def split_arrays(feed: CachedFeed, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The last layer's pooled features, labels and keys of ``split``, in evaluation order."""
    xs, ys, keys = [], [], []
    for batch in feed.evaluate(split):
        xs.append(batch.stacked[:, -1, 0].double().numpy())
        ys.append(batch.labels.numpy())
        keys += batch.keys
    return np.concatenate(xs), np.concatenate(ys), keys


def sklearn_fold(feed: CachedFeed, grid: list[float], labels: tuple[str, ...]
                 ) -> tuple[float, dict[str, int], dict[str, int]]:
    """The C picked on dev, and test predictions (key -> class) at it and at C = 0.1."""
    x_tr, y_tr, _ = split_arrays(feed, "train")
    x_dev, y_dev, _ = split_arrays(feed, "dev")
    x_te, _, keys = split_arrays(feed, "test")

    def fit(c: float) -> LogisticRegression:
        return LogisticRegression(C=c, tol=1e-8, max_iter=10000).fit(x_tr, y_tr)

    best, best_c, best_model = -1.0, None, None
    for c in sorted(grid):
        model = fit(c)
        uar = compute_metrics(y_dev.tolist(), model.predict(x_dev).tolist(), labels)["uar"]
        if uar > best:
            best, best_c, best_model = uar, c, model
    fixed = fit(0.1)
    return (best_c, dict(zip(keys, best_model.predict(x_te).tolist(), strict=True)),
            dict(zip(keys, fixed.predict(x_te).tolist(), strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="/work/shared/data")
    parser.add_argument("--upstream", default="egemaps")
    parser.add_argument("--budget", default="probe")
    parser.add_argument("--normalize", default="speaker")
    parser.add_argument("--folds", nargs="*", help="fold names or indices (default: all)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: the solver's products are tiny; more threads "
                             "only wait on each other on a loaded machine)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)

    comps = collect()
    grid_text = comps.methods.get("logreg").defaults["c_values"]
    grid = [float(c) for c in grid_text.split(",")]
    plan = make_plan(comps, methods=["logreg"], upstreams=[args.upstream], dataset="emodb",
                     data_root=args.data_root, budget=args.budget, seeds=1, folds=args.folds,
                     options={"normalize": args.normalize})
    data, device = plan.dataset, resolve_device("cpu")
    labels = data.labels
    by_key = {u.key: u for u in data.utterances}
    ours_all: list[tuple[int, int]] = []
    theirs_all: list[tuple[int, int]] = []
    fixed_all: list[tuple[int, int]] = []
    print(f"logreg vs scikit-learn: emodb, {args.upstream}, budget {args.budget}, "
          f"normalize={args.normalize}, 1 seed, C grid {grid_text}")
    print(f"{'fold':>6} {'test':>5} {'C ours':>7} {'C skl':>7} {'UAR ours':>9} {'UAR skl':>8} "
          f"{'agree':>7} {'steps':>6} {'stopped':>10} {'seconds':>8}")
    for run in plan.runs:
        started = time.perf_counter()
        run_record, predictions = execute_run(plan, run, device)
        record = run_record.to_json()
        seconds = time.perf_counter() - started
        fold = data.folds[run.spec.fold]
        entry = cached_features(comps.upstreams.get(args.upstream), "emodb", data.root,
                                data.utterances, device, need_frames=False, quiet=True)
        splits = {s: [by_key[k] for k in getattr(fold, s) if k in entry.rows]
                  for s in ("train", "dev", "test")}
        feed = CachedFeed(entry, splits, {lab: i for i, lab in enumerate(labels)}, 90.0,
                          pooled=True, normalize=args.normalize)
        c_skl, theirs, fixed = sklearn_fold(feed, grid, labels)
        ours = {p["key"]: labels.index(p["prediction"]) for p in predictions}
        truth = {p["key"]: labels.index(p["label"]) for p in predictions}
        keys = sorted(truth)
        ours_all += [(truth[k], ours[k]) for k in keys]
        theirs_all += [(truth[k], theirs[k]) for k in keys]
        fixed_all += [(truth[k], fixed[k]) for k in keys]
        uar_skl = compute_metrics([truth[k] for k in keys], [theirs[k] for k in keys],
                                  labels)["uar"]
        agree = sum(ours[k] == theirs[k] for k in keys)
        info = record["method_info"]["logreg"]
        speaker = by_key[keys[0]].speaker
        print(f"{run.spec.fold:>6} {speaker:>5} {info['chosen_c']:>7g} {c_skl:>7g} "
              f"{100 * record['metrics']['uar']:>9.2f} {100 * uar_skl:>8.2f} "
              f"{agree:>3}/{len(keys):<3} {record['usage']['steps']:>6} "
              f"{record['usage']['stopped_by']:>10} {seconds:>8.1f}")

    def pooled(pairs: list[tuple[int, int]]) -> float:
        t, p = zip(*pairs, strict=True)
        return 100 * compute_metrics(list(t), list(p), labels)["uar"]

    print(f"pooled UAR over {len(ours_all)} test utterances: serbench logreg "
          f"{pooled(ours_all):.2f}, scikit-learn {pooled(theirs_all):.2f} (C on dev), "
          f"scikit-learn C=0.1 {pooled(fixed_all):.2f}; difference "
          f"{pooled(ours_all) - pooled(theirs_all):+.2f} points")


if __name__ == "__main__":
    main()
