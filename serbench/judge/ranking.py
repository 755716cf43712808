"""Rank the conditions of each table: pooled metric with its CI, ranks, every pair tested with the
paired speaker bootstrap (Holm-adjusted over all pairs), marks against the best or a baseline.

One table per (dataset, protocol, dataset options, budget signature, device type, frozen or
fine-tuned upstream): conditions that ran under different budgets are never ranked together. In a
table each condition gets its pooled metric (all test predictions pooled over folds × seeds) with
a 95 % CI for that same number (speaker bootstrap plus the trained models' variance), a rank by
it, and the mean ± std over its runs beside it. Every pair of conditions is tested with the paired
speaker bootstrap (with model variance), which decides the marks; its p-values are Holm-adjusted
over *all* pairs, so the family-wise error holds although the best is picked after looking.
Wilcoxon over folds is reported (Holm-adjusted likewise) and McNemar as descriptive only.
Conditions that tuned different options are not tested against each other.
The formats are :mod:`serbench.report.leaderboard`; the statistics :mod:`serbench.judge.stats`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from serbench import __version__
from serbench.judge.conditions import Condition, Table, find_condition
from serbench.judge.exact import holm, mcnemar_pooled, wilcoxon_matched
from serbench.judge.metrics import METRICS
from serbench.judge.names import format_options
from serbench.judge.stats import (
    ALPHA,
    N_BOOT,
    PairingError,
    Spread,
    bootstrap_weights,
    check_paired,
    model_spread,
    paired_delta,
    percentile_ci,
    replicate_metric,
    rng_for,
)
from serbench.judge.text import (
    plural,
)
from serbench.specs import ConfigError

MARK = "†"


@dataclass
class Board:
    """One computed table: JSON-ready rows (best first) and what is printed under it."""

    table: Table
    metric: str
    rows: list[dict[str, Any]]
    signature: str
    baseline: str | None = None
    n_pairs: int = 0
    notes: list[str] = field(default_factory=list)
    alpha: float = ALPHA
    pairs: list[dict[str, Any]] = field(default_factory=list)  # every pair once, Holm-adjusted


class Samples:
    """Bootstrap replicates of every condition, one shared draw per test set (paired)."""

    def __init__(self, n_boot: int, seed: int) -> None:
        self.n_boot, self.seed = n_boot, seed
        self._weights: dict[str, np.ndarray] = {}
        self.values: dict[tuple[int, str], np.ndarray] = {}
        self._spreads: dict[tuple[int, str], Spread] = {}

    def spread(self, cond: Condition, metric: str) -> Spread:
        """The trained models' share of the condition's variance (see :func:`model_spread`)."""
        key = (id(cond), metric)
        if key not in self._spreads:
            self._spreads[key] = model_spread(cond.pooled, metric)
        return self._spreads[key]

    def of(self, cond: Condition, metric: str) -> np.ndarray:
        key = (id(cond), metric)
        if key not in self.values:
            conf = cond.pooled.speaker_confusions()
            w = self._weights.get(cond.test_id)
            if w is None:
                w = bootstrap_weights(conf.shape[0], self.n_boot, rng_for(self.seed, cond.test_id))
                self._weights[cond.test_id] = w
            self.values[key] = replicate_metric(conf, w, metric)
        return self.values[key]


def build(
    tables: Sequence[Table], metric: str = "uar", baseline: str | None = None,
    alpha: float = ALPHA, n_boot: int = N_BOOT, seed: int = 0,
) -> list[Board]:
    """Compute every table: summaries, ranks, paired tests and marks."""
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")
    base_hits = find_condition(tables, baseline, "baseline") if baseline else []
    samples = Samples(n_boot, seed)
    boards = []
    for table in tables:
        base = next((c for t, c in base_hits if t is table), None)
        boards.append(_board(table, metric, base, alpha, samples))
    return boards


def _board(
    table: Table, metric: str, base: Condition | None, alpha: float, samples: Samples
) -> Board:
    conds = sorted(table.conditions, key=lambda c: (-c.pooled.metric(metric), c.name))
    rows = [summarize(c, samples) for c in conds]
    notes = [f"{c.name}: {c.failed} failed run{'s' if c.failed > 1 else ''} not counted (the same "
             "`serbench run` command retries them)." for c in conds if c.failed]
    notes += [n for c in conds for n in c.notes]
    _rank(rows, metric)
    best = conds[0]
    pairs: dict[frozenset[int], dict[str, Any]] = {}
    for i, c in enumerate(conds):
        for ref in conds[:i]:
            pairs[frozenset((id(ref), id(c)))] = pair(c, ref, metric, samples, notes, alpha)
    for test in ("p_bootstrap", "p_wilcoxon"):
        adjusted = holm([p[test] for p in pairs.values()])
        for p, q in zip(pairs.values(), adjusted, strict=True):
            p[test + "_holm"] = q
    notes += _untested_notes(conds, pairs)
    for c, row in zip(conds, rows, strict=True):
        row["best"] = c is best
        vs_best = _oriented(pairs, c, best)
        row["vs_best"] = vs_best
        row["not_worse_than_best"] = True if c is best else (
            None if not _tested(vs_best)
            else not (_significant(vs_best, alpha) and vs_best["delta"] < 0))
        if base is not None:
            vs_base = _oriented(pairs, c, base)
            row["vs_baseline"] = vs_base
            row["delta_vs_baseline"] = vs_base["delta"] if vs_base else None
            row["p_vs_baseline"] = vs_base["p_bootstrap_holm"] if vs_base else None
    tested = sum(_tested(p) for p in pairs.values())
    return Board(table, metric, rows, signature(table, samples, alpha),
                 base.name if base else None, tested, notes, alpha, list(pairs.values()))


def _untested_notes(
    conds: Sequence[Condition], pairs: dict[frozenset[int], dict[str, Any]]
) -> list[str]:
    """One line per reason a pair got no test (other than other test sets, noted per pair)."""
    reasons: dict[str, set[str]] = {}
    for p in pairs.values():
        if p.get("untested"):
            reasons.setdefault(p["untested"], set()).update((p["condition"], p["against"]))
    out = []
    for reason, names in reasons.items():
        if reason == "tuned":
            tuned = ", ".join(f"{c.name} ({', '.join(c.tuned) or 'nothing'})" for c in conds
                              if c.name in names)
            out.append(f"No significance mark between conditions that tuned different options: "
                       f"{tuned}.")
        else:
            out.append(f"Not tested: {', '.join(sorted(names))}: {reason}.")
    return out


def _tested(pair: dict[str, Any] | None) -> bool:
    p = None if pair is None else pair["p_bootstrap"]
    return p is not None and math.isfinite(p)


def _oriented(
    pairs: dict[frozenset[int], dict[str, Any]], c: Condition, ref: Condition
) -> dict[str, Any] | None:
    """The pair of ``c`` and ``ref`` as ``c − ref`` (pairs are stored once, either way round)."""
    pair = pairs.get(frozenset((id(c), id(ref))))
    if pair is None or pair["against"] == ref.name:
        return pair
    flipped = dict(pair, condition=c.name, against=ref.name, delta=-pair["delta"],
                   n10=pair["n01"], n01=pair["n10"])
    if pair["delta_ci"]:
        flipped["delta_ci"] = [-pair["delta_ci"][1], -pair["delta_ci"][0]]
    return flipped


def _significant(pair: dict[str, Any], alpha: float) -> bool:
    p = pair.get("p_bootstrap_holm")
    return p is not None and p < alpha


def summarize(c: Condition, samples: Samples) -> dict[str, Any]:
    """A condition's row. ``uar`` (and each metric) is the *pooled* metric, ranked and tested,
    with ``uar_ci`` its CI; ``uar_runs_mean`` / ``uar_std`` describe the runs one by one."""
    row: dict[str, Any] = {
        "condition": c.name, "upstream": c.upstream, "method": c.method,
        "options": dict(c.options), "dataset": c.dataset, "protocol": c.protocol,
        "dataset_options": dict(c.dataset_options), "budget": c.budget,
        "budget_signature": c.budget_signature, "runs": len(c.runs),
        "folds": len(c.folds), "seeds": len(c.seeds),
    }
    n_speakers = len(c.pooled.speaker_names)
    for m in METRICS:
        values = c.run_metric(m)
        row[m] = row[f"{m}_pooled"] = c.pooled.metric(m)
        row[f"{m}_runs_mean"] = float(values.mean())
        row[f"{m}_std"] = float(values.std(ddof=1)) if len(values) > 1 else None
        row[f"{m}_ci"] = list(percentile_ci(samples.of(c, m), n_speakers,
                                            spread=samples.spread(c, m), estimate=row[m]))
    row["ci_missing"] = samples.spread(c, "uar").missing
    steps = [r.get("steps") for r in c.runs if r.get("steps") is not None]
    row["steps_min"], row["steps_max"] = (min(steps), max(steps)) if steps else (None, None)
    stops: dict[str, int] = {}
    for r in c.runs:
        stops[r.get("stopped_by") or "?"] = stops.get(r.get("stopped_by") or "?", 0) + 1
    row["stopped_by"] = dict(sorted(stops.items()))
    row["tuned"] = list(c.tuned)
    row["transductive"] = c.transductive
    row["modality"] = c.modality
    row["speakers"] = n_speakers
    row["test_id"] = c.test_id
    row["run_ids"] = [r["run_id"] for r in c.runs]
    return row


def _rank(rows: list[dict[str, Any]], metric: str) -> None:
    """Competition ranking (1, 2, 2, 4) by the pooled metric, rows already sorted best first."""
    for i, row in enumerate(rows):
        tied = i and math.isclose(row[metric], rows[i - 1][metric], rel_tol=0, abs_tol=1e-12)
        row["rank"] = rows[i - 1]["rank"] if tied else i + 1


def pair(
    c: Condition, ref: Condition, metric: str, samples: Samples, notes: list[str],
    alpha: float = ALPHA,
) -> dict[str, Any]:
    """``c`` against ``ref``: Δ = c − ref with its CI and the tests' raw p-values.

    ``n10`` counts test utterances ``c`` got right (in most seeds) and ``ref`` wrong, ``n01`` the
    reverse (McNemar, descriptive: utterances of one speaker are not independent);
    ``matched_runs`` the (fold, seed) runs both have, which Wilcoxon compares as
    ``wilcoxon_pairs`` folds (seeds averaged) or, with one fold, seeds (``wilcoxon_unit``); with
    too few pairs to reach ``alpha`` its p is None and ``wilcoxon_note`` says so. Unpaired
    conditions (other test sets) and conditions that tuned different options get no tests;
    ``untested`` says why (``"tuned"``, or the reason in words).
    """
    delta = c.pooled.metric(metric) - ref.pooled.metric(metric)
    out: dict[str, Any] = {"condition": c.name, "against": ref.name, "delta": delta,
                           "delta_ci": None, "p_bootstrap": None, "p_mcnemar": None,
                           "p_wilcoxon": None, "n10": 0, "n01": 0, "matched_runs": 0,
                           "wilcoxon_pairs": 0, "wilcoxon_unit": None, "wilcoxon_note": None,
                           "df": None, "untested": None}
    try:
        if c.test_id != ref.test_id:
            raise PairingError("different test sets")
        check_paired(c.pooled, ref.pooled)
    except PairingError as exc:
        notes.append(f"{c.name} is not tested against {ref.name}: {exc} "
                     f"(folds {_fold_text(c)} vs {_fold_text(ref)}).")
        return out
    if c.tuned != ref.tuned:
        out["untested"] = "tuned"
        return out
    diff = samples.of(c, metric) - samples.of(ref, metric)
    boot = paired_delta(out["delta"], diff, len(c.pooled.speaker_names),
                        spread=samples.spread(c, metric) + samples.spread(ref, metric))
    if boot.missing:
        out["untested"] = boot.missing + (": run --seeds 3 for a verdict"
                                          if boot.missing.startswith("1 seed") else "")
    else:
        out.update(delta_ci=list(boot.ci), p_bootstrap=boot.p, df=boot.df)
    out["n10"], out["n01"], out["p_mcnemar"] = mcnemar_pooled(c.pooled, ref.pooled)
    w = wilcoxon_matched(c.run_metric_by_cell(metric), ref.run_metric_by_cell(metric))
    out.update(matched_runs=w.runs, wilcoxon_pairs=w.pairs, wilcoxon_unit=w.unit)
    if w.pairs and w.smallest_p >= alpha:
        out["wilcoxon_note"] = (f"{plural(w.pairs, w.unit)}: the exact test cannot reach "
                                f"p < {alpha:g} (its smallest p is {w.smallest_p:.3g})")
    else:
        out["p_wilcoxon"] = w.p
    return out


def _fold_text(c: Condition) -> str:
    return ",".join(str(f) for f in c.folds)


def signature(table: Table, samples: Samples, alpha: float) -> str:
    seeds = ",".join(str(s) for s in table.seeds)
    folds = plural(len(table.folds), "fold")
    setup = "".join(f" · {x}" for x in table.setup())
    return (f"serbench {__version__} · {table.dataset}{format_options(table.dataset_options)} / "
            f"{table.protocol} · budget {table.budget} ({table.budget_signature}){setup} · seeds "
            f"{seeds} · {folds} · tests: paired speaker bootstrap with model variance (B="
            f"{samples.n_boot}, seed {samples.seed}), Holm over all pairs; Wilcoxon signed-rank "
            f"over folds; McNemar exact (descriptive) · alpha {alpha:g}")
