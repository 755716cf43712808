"""Leaderboard formats: markdown, LaTeX, CSV and JSON of the boards serbench.judge.ranking
computed (the web page is :mod:`serbench.report.html`; one entry to all of them is
:mod:`serbench.report.render`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any, Sequence

from serbench.judge import references
from serbench.judge.metrics import METRICS
from serbench.judge.names import format_options
from serbench.judge.ranking import MARK, Board
from serbench.judge.text import (
    METRIC_NAMES,
    delta_text,
    display_name,
    md_escape,
    mean_std,
    p_text,
    pct,
    pipe_table,
    plural,
    pooled_ci,
    steps_text,
    tex,
)

# ------------------------------------------------------------------------------- rendering


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


def to_markdown(boards: Sequence[Board]) -> str:
    parts = []
    for board in boards:
        header, body, notes = cells(board)
        n_metrics = len(METRICS) - 1  # the other metrics' pooled columns, after the run mean
        right = {1, 3, *range(5, 5 + n_metrics), *range(7 + n_metrics, len(header))}
        text = [f"### {md_escape(board.table.title)}", "", *pipe_table(header, body, right),
                *references.markdown(board), ""]
        text += [f"{n}  " for n in notes] + [f"_{board.signature}_", ""]
        parts.append("\n".join(text))
    return "\n".join(parts)


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


