"""Leaderboard tables: rank conditions with CIs and paired tests, render md / LaTeX / CSV / JSON.

One table per (dataset, protocol, dataset options, budget signature, device type, frozen or
fine-tuned upstream): conditions that ran under different budgets are never ranked together. In a
table each condition gets its pooled metric (all test predictions pooled over folds × seeds) with
a 95 % CI for that same number (speaker bootstrap plus the trained models' variance), a rank by
it, and the mean ± std over its runs beside it. Every pair of conditions is tested with the paired
speaker bootstrap (with model variance), which decides the marks; its p-values are Holm-adjusted
over *all* pairs, so the family-wise error holds although the best is picked after looking.
Wilcoxon over folds is reported (Holm-adjusted likewise) and McNemar as descriptive only.
Conditions that tuned different options are not tested against each other.
The web page is :mod:`serbench.report.html`; the statistics are :mod:`serbench.judge.stats`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from serbench import __version__
from serbench.judge import references
from serbench.judge.conditions import Condition, Table, find_condition, format_options
from serbench.judge.metrics import METRICS
from serbench.judge.stats import (
    ALPHA,
    N_BOOT,
    PairingError,
    Spread,
    bootstrap_weights,
    check_paired,
    holm,
    mcnemar_pooled,
    model_spread,
    paired_delta,
    percentile_ci,
    replicate_metric,
    rng_for,
    wilcoxon_matched,
)
from serbench.specs import ConfigError

FORMATS = ("md", "latex", "csv", "json", "html")
METRIC_NAMES = {"uar": "UAR", "war": "WAR", "macro_f1": "macro-F1"}
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


# ------------------------------------------------------------------------------- rendering


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}"


def mean_std(row: dict[str, Any], m: str) -> str:
    """The mean ± std of the runs' metric: ``58.3 ± 25.0``."""
    std, mean = row[f"{m}_std"], row[f"{m}_runs_mean"]
    return pct(mean) if std is None else f"{pct(mean)} ± {pct(std)}"


def pooled_ci(row: dict[str, Any], m: str) -> str:
    """The pooled metric and its 95 % CI: ``37.1 [30.8, 43.5]``."""
    return f"{pct(row[m])} {ci_text(row[f'{m}_ci'])}"


def ci_text(ci: Sequence[float] | None) -> str:
    return "–" if not ci or not all(map(math.isfinite, ci)) else f"[{pct(ci[0])}, {pct(ci[1])}]"


def p_text(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def delta_text(d: float | None) -> str:
    return "–" if d is None or not math.isfinite(d) else f"{round(100 * d, 1) or 0.0:+.1f}"


def display_name(row: dict[str, Any]) -> str:
    """The condition's name with what a reader must know beside it."""
    marks = ["transductive"] if row.get("transductive") else []
    if row.get("modality", "audio") != "audio":
        marks.append(row["modality"])
    return " · ".join([row["condition"], *marks])


def steps_text(row: dict[str, Any]) -> str:
    """``40–40 (max_steps)``: fewest and most steps of the runs, and what stopped them."""
    lo, hi = row.get("steps_min"), row.get("steps_max")
    steps = "–" if lo is None else (f"{lo}" if lo == hi else f"{lo}–{hi}")
    stops = row.get("stopped_by") or {}
    known = {k: v for k, v in stops.items() if k != "?"}
    if not known:
        return steps
    if len(known) == 1 and sum(stops.values()) == sum(known.values()):
        return f"{steps} ({next(iter(known))})"
    return f"{steps} ({', '.join(f'{k} ×{v}' for k, v in stops.items())})"


def cells(board: Board) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, body cells and legend lines shared by the text formats (bold as ``**``)."""
    m = board.metric
    others = [x for x in METRICS if x != m]
    name = METRIC_NAMES[m]
    header = ["condition", "runs", f"{name} % pooled [95 % CI]", "rank",
              f"{name} % runs (mean ± std)"]
    header += [f"{METRIC_NAMES[x]} % pooled" for x in others]
    header += ["steps (stopped by)", "tuned"]
    if board.baseline:
        header += [f"Δ {name} vs {board.baseline}", "p (Holm)"]
    body = []
    for row in board.rows:
        label, value = display_name(row), pooled_ci(row, m)
        if row["best"]:
            label, value = f"**{label}**", f"**{value}**"
        elif row["not_worse_than_best"] and len(board.rows) > 1:
            label = f"{label} {MARK}"
        line = [label, str(row["runs"]), value, str(row["rank"]), mean_std(row, m)]
        line += [pct(row[x]) for x in others]
        line += [steps_text(row), ", ".join(row["tuned"]) or "–"]
        if board.baseline:
            is_base = row["condition"] == board.baseline
            line += ["baseline" if is_base else delta_text(row["delta_vs_baseline"]),
                     "" if is_base else p_text(row["p_vs_baseline"])]
        body.append(line)
    return header, body, legend(board)


def legend(board: Board) -> list[str]:
    lines = []
    name = METRIC_NAMES[board.metric]
    pooled = ("pooled: the metric of all test predictions pooled over folds and seeds, ranked "
              "and tested; CI: speaker bootstrap plus the variance of the trained models.")
    if len(board.rows) > 1 and not board.n_pairs:
        lines.append(f"**bold**: best pooled {name}; no pair could be tested (see below). "
                     f"{pooled}")
    elif len(board.rows) > 1:
        k = board.n_pairs
        lines.append(f"**bold**: best pooled {name}; {MARK}: not significantly worse than the best "
                     f"(paired speaker bootstrap with model variance, Holm over all the table's "
                     f"pairs: {plural(k, 'tested pair')}, alpha {board.alpha:g}). {pooled}")
    else:
        lines.append(pooled)
    if any(r.get("ci_missing") for r in board.rows):
        lines.append("–: no CI where one seed per fold was run on folds of several test speakers "
                     "(the trained models' variance cannot be estimated: run --seeds 3).")
    if any(r.get("transductive") for r in board.rows):
        lines.append("transductive: normalize=speaker uses each test speaker's unlabelled test "
                     "audio (see docs/protocols.md).")
    if board.baseline:
        lines.append(f"Δ: pooled {name} minus the baseline's, in points; "
                     "p: paired speaker bootstrap with model variance, Holm-adjusted.")
    lines += board.notes
    return lines


def md_escape(text: str) -> str:
    """A cell or title safe in Markdown: ``|`` escaped, line breaks folded, raw HTML inert."""
    text = " ".join(text.split())
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|"))


def _pipe_table(header: list[str], body: list[list[str]], right: set[int]) -> list[str]:
    """A padded GitHub-markdown table; columns in ``right`` are right-aligned."""
    header, body = [md_escape(h) for h in header], [[md_escape(v) for v in r] for r in body]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(values: list[str]) -> str:
        padded = (v.rjust(w) if i in right else v.ljust(w)
                  for i, (v, w) in enumerate(zip(values, widths, strict=True)))
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in right else (":" + "-" * (w + 1))
                          for i, w in enumerate(widths)) + "|"
    return [line(header), rule, *map(line, body)]


def to_markdown(boards: Sequence[Board]) -> str:
    parts = []
    for board in boards:
        header, body, notes = cells(board)
        n_metrics = len(METRICS) - 1  # the other metrics' pooled columns, after the run mean
        right = {1, 3, *range(5, 5 + n_metrics), *range(7 + n_metrics, len(header))}
        text = [f"### {md_escape(board.table.title)}", "", *_pipe_table(header, body, right),
                *references.markdown(board), ""]
        text += [f"{n}  " for n in notes] + [f"_{board.signature}_", ""]
        parts.append("\n".join(text))
    return "\n".join(parts)


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
        "±": r"$\pm$", "Δ": r"$\Delta$", "†": r"$^\dagger$", "–": "--", "·": r"$\cdot$",
        "<": r"$<$", ">": r"$>$"}


def tex(text: str) -> str:
    out = "".join(_TEX.get(ch, ch) for ch in text)
    while "**" in out:
        head, _, rest = out.partition("**")
        inner, _, tail = rest.partition("**")
        out = f"{head}\\textbf{{{inner}}}{tail}"
    return out


def to_latex(boards: Sequence[Board]) -> str:
    parts = []
    for board in boards:
        header, body, notes = cells(board)
        spec = "l" + "r" * (len(header) - 1)
        lines = [r"\begin{table}[t]", r"\centering", r"\small",
                 rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
                 " & ".join(tex(h) for h in header) + r" \\", r"\midrule"]
        lines += [" & ".join(tex(c) for c in row) + r" \\" for row in body]
        lines += [r"\bottomrule", r"\end{tabular}", *references.latex(board)]
        caption = " ".join([tex(board.table.title) + "."] + [tex(n) for n in notes]
                           + [tex(board.signature)])
        lines += [rf"\caption{{{caption}}}", r"\end{table}", ""]
        parts.append("\n".join(lines))
    return "% needs \\usepackage{booktabs}\n" + "\n".join(parts)


JSON_KEYS = ("condition", "upstream", "method", "options", "dataset", "protocol",
             "dataset_options", "budget", "budget_signature", "runs", "folds", "seeds",
             "uar", "uar_ci", "uar_runs_mean", "uar_std", "war", "war_ci", "war_runs_mean",
             "war_std", "macro_f1", "macro_f1_ci", "macro_f1_runs_mean", "macro_f1_std", "rank",
             "steps_min", "steps_max", "stopped_by", "tuned", "transductive", "modality")


def to_rows(boards: Sequence[Board]) -> list[dict[str, Any]]:
    """Flat JSON rows, table by table, best first; each carries its table's signature."""
    out = []
    for board in boards:
        for row in board.rows:
            d = {k: row[k] for k in JSON_KEYS}
            d.update(metric=board.metric, best=row["best"],
                     not_worse_than_best=row["not_worse_than_best"],
                     uar_pooled=row["uar_pooled"], speakers=row["speakers"],
                     ci_missing=row["ci_missing"],
                     vs_best=row["vs_best"], run_ids=row["run_ids"],
                     signature=board.signature, references=row.get("references", []))
            if board.baseline:
                d.update(baseline=board.baseline, delta_vs_baseline=row["delta_vs_baseline"],
                         p_vs_baseline=row["p_vs_baseline"], vs_baseline=row["vs_baseline"])
            out.append(d)
    return out


def to_json(boards: Sequence[Board]) -> str:
    return json.dumps(json_ready(to_rows(boards)), indent=2) + "\n"


def json_ready(obj: Any) -> Any:
    """NaN is not JSON: undefined numbers become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    return obj


CSV_KEYS = ("dataset", "protocol", "budget", "budget_signature", "condition", "upstream",
            "method", "options", "runs", "rank", "uar", "uar_ci_low", "uar_ci_high",
            "uar_runs_mean", "uar_std", "war", "war_runs_mean", "war_std", "macro_f1",
            "macro_f1_runs_mean", "macro_f1_std", "best", "not_worse_than_best",
            "delta_vs_baseline", "p_vs_baseline", "steps_min", "steps_max", "tuned",
            "transductive", "modality", "signature", *references.CSV_KEYS)


def to_csv(boards: Sequence[Board]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_KEYS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in json_ready(to_rows(boards)):
        row["options"] = format_options(row["options"])
        row["uar_ci_low"], row["uar_ci_high"] = row["uar_ci"] or (None, None)
        row["tuned"] = ",".join(row["tuned"])
        row.update(references.csv_fields(row))
        writer.writerow({k: csv_safe(v) for k, v in row.items()})
    return buf.getvalue()


def csv_safe(value: Any) -> Any:
    """Text a spreadsheet would run as a formula (``= + - @``, tab, CR first) gets a leading
    ``'`` (OWASP's advice); numbers, and text that is a plain number, are left as they are."""
    if not isinstance(value, str) or not value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


def render(boards: Sequence[Board], fmt: str, **html_args: Any) -> str:
    if fmt == "md":
        return to_markdown(boards)
    if fmt == "latex":
        return to_latex(boards)
    if fmt == "csv":
        return to_csv(boards)
    if fmt == "json":
        return to_json(boards)
    if fmt == "html":
        from serbench.report.html import to_html

        return to_html(boards, **html_args)
    raise ConfigError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
