"""Calibration of serbench's verdict: false-positive rate, power and minimum detectable ΔUAR.

    nice python benchmarks/calibration.py                 # the table in benchmarks/RESULTS.md
    nice python benchmarks/calibration.py --sims 200      # quicker, coarser

For every design of :data:`serbench.run.simulate.DESIGNS` (EmoDB-like: 10 LOSO folds;
IEMOCAP-like:
5 folds of 2 test speakers; one split of 60 test speakers) and per-model skill SD (0, 0.15, 0.3
logit; one draw per trained model, i.e. per fold × seed), two conditions with 3 seeds are
simulated ``--sims`` times. Printed per row: the false-positive rate of the verdict at α = 0.05
(equal systems) with its bound α + 2·sqrt(α(1−α)/n), the same rate for the speaker bootstrap
alone (what serbench did before the models' variance counted), the power at a planted skill
difference of 0.4 logit, and the minimum detectable ΔUAR: the smallest planted difference on a
0.1-logit grid found in ≥ 80 % of simulations, as the mean estimated ΔUAR there.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from serbench.run.simulate import DESIGNS, verdict_p

ALPHA = 0.05
GRID = np.round(np.arange(0.1, 1.51, 0.1), 2)


def minimum_detectable(design, model_sd: float, sims: int, seed: int) -> tuple[float, float]:
    """(skill shift, mean ΔUAR) of the first grid point with power ≥ 0.8; NaN if none."""
    for shift in GRID:
        ps, deltas = verdict_p(design, float(shift), model_sd, 3, sims, seed=seed)
        if np.mean(ps < ALPHA) >= 0.8:
            return float(shift), float(np.mean(deltas))
    return float("nan"), float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=500, help="simulations per cell (500)")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    n = args.sims
    margin = ALPHA + 2 * np.sqrt(ALPHA * (1 - ALPHA) / n)
    print(f"verdict at alpha {ALPHA}: paired speaker bootstrap (B=200) + model variance; 3 seeds; "
          f"{n} simulations per cell; false-positive bound {margin:.3f}\n")
    head = ("design", "model SD", "FPR", "FPR speakers only", "power @0.4 logit",
            "min. detectable (logit)", "min. detectable ΔUAR")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    t0 = time.perf_counter()
    for design in DESIGNS:
        for sd in (0.0, 0.15, 0.3):
            fpr = np.mean(verdict_p(design, 0.0, sd, 3, n, seed=args.seed)[0] < ALPHA)
            old = np.mean(verdict_p(design, 0.0, sd, 3, n, seed=args.seed, models=False)[0]
                          < ALPHA)
            power = np.mean(verdict_p(design, 0.4, sd, 3, n, seed=args.seed + 1)[0] < ALPHA)
            shift, delta = minimum_detectable(design, sd, max(n // 2, 100), args.seed + 2)
            ok = "" if fpr <= margin else " (over bound)"
            print(f"| {design.name} | {sd:g} | {fpr:.3f}{ok} | {old:.3f} | {power:.2f} | "
                  f"{shift:.1f} | {100 * delta:.1f} points |", flush=True)
    print("\ndesigns: " + "; ".join(f"{d.name}: {d.describe()}" for d in DESIGNS))
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
