"""Exact tests beside the bootstrap: McNemar on the pooled discordant pairs (descriptive),
Wilcoxon signed-rank over matched folds, and Holm's adjustment over a family of p-values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from serbench.judge.stats import Pooled, check_paired


def mcnemar_exact(n01: int | np.ndarray, n10: int | np.ndarray) -> float | np.ndarray:
    """Two-sided exact McNemar p from the discordant counts (binomial, p = 1/2)."""
    from scipy.stats import binom

    n01, n10 = np.asarray(n01), np.asarray(n10)
    n = n01 + n10
    p = np.minimum(1.0, 2 * binom.cdf(np.minimum(n01, n10), n, 0.5))
    p = np.where(n == 0, 1.0, p)
    return float(p) if p.ndim == 0 else p


def mcnemar_pooled(a: Pooled, b: Pooled) -> tuple[int, int, float]:
    """(A right and B wrong, A wrong and B right, p) on majority-of-seeds correctness."""
    check_paired(a, b)
    ra, rb = a.correct() > 0.5, b.correct() > 0.5
    n10 = int(np.count_nonzero(ra & ~rb))
    n01 = int(np.count_nonzero(~ra & rb))
    return n10, n01, float(mcnemar_exact(n01, n10))


def wilcoxon_signed_rank(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Wilcoxon p over matched scores; None without pairs, 1 when all are equal.

    Zero differences are dropped. Up to 50 pairs the p-value is exact, ties included: the null
    distribution of the positive rank sum (mid-ranks) is built by dynamic programming, which is
    what scipy's permutation fallback computes, without enumerating 2^n sign flips. Beyond 50
    pairs, scipy's normal approximation with tie correction.
    """
    from scipy.stats import rankdata, wilcoxon

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0:
        return None
    d = x - y
    d = d[np.abs(d) > 1e-12]
    if d.size == 0:
        return 1.0
    if d.size > 50:
        return float(wilcoxon(d, method="approx").pvalue)
    twice = np.rint(2 * rankdata(np.round(np.abs(d), 12))).astype(int)  # mid-ranks × 2
    dist = np.zeros(int(twice.sum()) + 1)
    dist[0] = 1.0
    for r in twice:  # each rank is positive or negative with probability 1/2
        shifted = np.zeros_like(dist)
        shifted[r:] = dist[:-r]
        dist = 0.5 * (dist + shifted)
    t = int(twice[d > 0].sum())
    return float(min(1.0, 2 * min(dist[: t + 1].sum(), dist[t:].sum())))


@dataclass(frozen=True)
class Wilcoxon:
    p: float | None
    pairs: int      # folds (or, with one fold, seeds) compared
    runs: int       # matched (fold, seed) runs behind them
    unit: str       # "fold" or "seed"

    @property
    def smallest_p(self) -> float:
        """The smallest two-sided p the exact test can give with this many pairs, ``2 / 2**n``:
        with 5 folds it is 0.0625, so the test can never reject at 0.05."""
        return 1.0 if self.pairs == 0 else float(min(1.0, 2.0 ** (1 - self.pairs)))


def wilcoxon_matched(
    a: Mapping[tuple[str, str], float], b: Mapping[tuple[str, str], float]
) -> Wilcoxon:
    """Wilcoxon over runs matched by (fold, seed): folds paired, seeds averaged within a fold."""
    cells = sorted(set(a) & set(b))
    folds = sorted({fold for fold, _ in cells})
    if len(folds) == 1:
        return Wilcoxon(wilcoxon_signed_rank([a[c] for c in cells], [b[c] for c in cells]),
                        len(cells), len(cells), "seed")
    x = [float(np.mean([a[c] for c in cells if c[0] == f])) for f in folds]
    y = [float(np.mean([b[c] for c in cells if c[0] == f])) for f in folds]
    return Wilcoxon(wilcoxon_signed_rank(x, y), len(folds), len(cells), "fold")


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm step-down adjusted p-values; ``None``/NaN entries stay out of the family."""
    idx = [i for i, p in enumerate(pvalues) if p is not None and np.isfinite(p)]
    out: list[float | None] = [None] * len(pvalues)
    m = len(idx)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda j: pvalues[j])):  # type: ignore[arg-type]
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))  # type: ignore[arg-type]
        out[i] = running
    return out
