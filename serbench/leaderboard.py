"""Leaderboard tables: rank conditions with CIs and paired tests, render md / LaTeX / CSV / JSON.

One table per (dataset, protocol, dataset options, budget signature): conditions that ran under
different budgets are never ranked together. In a table each condition gets the mean ± std of the
metric over its runs (folds × seeds), a 95 % speaker-bootstrap CI of its pooled metric, and a rank
by the mean. The pairs a table marks — the best against every other condition, and the
``--baseline`` against every other — are tested with the paired speaker bootstrap (which decides
the marks), McNemar and Wilcoxon; each test's p-values are Holm-adjusted over all those pairs.
The web page is :mod:`serbench.html`; the statistics are :mod:`serbench.stats`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from . import __version__
from .conditions import Condition, Table, find_condition, format_options
from .metrics import METRICS
from .specs import ConfigError
from .stats import (
    ALPHA,
    N_BOOT,
    PairingError,
    bootstrap_weights,
    check_paired,
    holm,
    mcnemar_pooled,
    paired_delta,
    percentile_ci,
    replicate_metric,
    rng_for,
    wilcoxon_matched,
)

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


class Samples:
    """Bootstrap replicates of every condition, one shared draw per test set (paired)."""

    def __init__(self, n_boot: int, seed: int) -> None:
        self.n_boot, self.seed = n_boot, seed
        self._weights: dict[str, np.ndarray] = {}
        self.values: dict[tuple[int, str], np.ndarray] = {}

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
    conds = sorted(table.conditions, key=lambda c: (-float(np.mean(c.run_metric(metric))), c.name))
    rows = [summarize(c, samples) for c in conds]
    notes = [f"{c.name}: {c.failed} failed run{'s' if c.failed > 1 else ''} not counted (the same "
             "`serbench run` command retries them)." for c in conds if c.failed]
    _rank(rows, metric)
    best = conds[0]
    pairs: dict[frozenset[int], dict[str, Any]] = {}
    for c in conds:
        for ref in (best, base):
            if ref is not None and ref is not c and frozenset((id(ref), id(c))) not in pairs:
                pairs[frozenset((id(ref), id(c)))] = pair(c, ref, metric, samples, notes)
    families = {test: holm([p[test] for p in pairs.values()])
                for test in ("p_bootstrap", "p_mcnemar", "p_wilcoxon")}
    for j, p in enumerate(pairs.values()):
        for test, adjusted in families.items():
            p[test + "_holm"] = adjusted[j]
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
                 base.name if base else None, tested, notes, alpha)


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
    flipped = dict(pair, against=ref.name, delta=-pair["delta"], n10=pair["n01"], n01=pair["n10"])
    if pair["delta_ci"]:
        flipped["delta_ci"] = [-pair["delta_ci"][1], -pair["delta_ci"][0]]
    return flipped


def _significant(pair: dict[str, Any], alpha: float) -> bool:
    p = pair.get("p_bootstrap_holm")
    return p is not None and p < alpha


def summarize(c: Condition, samples: Samples) -> dict[str, Any]:
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
        row[m] = float(values.mean())
        row[f"{m}_std"] = float(values.std(ddof=1)) if len(values) > 1 else None
        row[f"{m}_pooled"] = c.pooled.metric(m)
        row[f"{m}_ci"] = list(percentile_ci(samples.of(c, m), n_speakers))
    row["speakers"] = n_speakers
    row["test_id"] = c.test_id
    row["run_ids"] = [r["run_id"] for r in c.runs]
    return row


def _rank(rows: list[dict[str, Any]], metric: str) -> None:
    """Competition ranking (1, 2, 2, 4) by the mean, rows already sorted best first."""
    for i, row in enumerate(rows):
        tied = i and math.isclose(row[metric], rows[i - 1][metric], rel_tol=0, abs_tol=1e-12)
        row["rank"] = rows[i - 1]["rank"] if tied else i + 1


def pair(
    c: Condition, ref: Condition, metric: str, samples: Samples, notes: list[str]
) -> dict[str, Any]:
    """``c`` against ``ref``: Δ = c − ref with its CI and the three tests' raw p-values.

    ``n10`` counts test utterances ``c`` got right (in most seeds) and ``ref`` wrong, ``n01`` the
    reverse; ``matched_runs`` the (fold, seed) runs both have, which Wilcoxon compares as
    ``wilcoxon_pairs`` folds (seeds averaged) or, with one fold, seeds (``wilcoxon_unit``).
    Unpaired conditions (other test sets) get no tests and a note instead.
    """
    delta = c.pooled.metric(metric) - ref.pooled.metric(metric)
    out: dict[str, Any] = {"against": ref.name, "delta": delta, "delta_ci": None,
                           "p_bootstrap": None, "p_mcnemar": None, "p_wilcoxon": None,
                           "n10": 0, "n01": 0, "matched_runs": 0, "wilcoxon_pairs": 0,
                           "wilcoxon_unit": None}
    try:
        if c.test_id != ref.test_id:
            raise PairingError("different test sets")
        check_paired(c.pooled, ref.pooled)
    except PairingError as exc:
        notes.append(f"{c.name} is not tested against {ref.name}: {exc} "
                     f"(folds {_fold_text(c)} vs {_fold_text(ref)}).")
        return out
    diff = samples.of(c, metric) - samples.of(ref, metric)
    boot = paired_delta(out["delta"], diff, len(c.pooled.speaker_names))
    if not math.isfinite(boot.p):
        notes.append(f"{c.name} is not tested against {ref.name}: the speaker bootstrap needs at "
                     "least 2 test speakers.")
    out.update(delta_ci=list(boot.ci), p_bootstrap=boot.p)
    out["n10"], out["n01"], out["p_mcnemar"] = mcnemar_pooled(c.pooled, ref.pooled)
    w = wilcoxon_matched(c.run_metric_by_cell(metric), ref.run_metric_by_cell(metric))
    out.update(p_wilcoxon=w.p, matched_runs=w.runs, wilcoxon_pairs=w.pairs, wilcoxon_unit=w.unit)
    return out


def _fold_text(c: Condition) -> str:
    return ",".join(str(f) for f in c.folds)


def signature(table: Table, samples: Samples, alpha: float) -> str:
    seeds = ",".join(str(s) for s in table.seeds)
    folds = plural(len(table.folds), "fold")
    return (f"serbench {__version__} · {table.dataset}{format_options(table.dataset_options)} / "
            f"{table.protocol} · budget {table.budget} ({table.budget_signature}) · seeds {seeds} "
            f"· {folds} · tests: paired speaker bootstrap (B={samples.n_boot}, seed "
            f"{samples.seed}), McNemar exact, Wilcoxon signed-rank, Holm · alpha {alpha:g}")


# ------------------------------------------------------------------------------- rendering


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}"


def mean_std(row: dict[str, Any], m: str) -> str:
    std = row[f"{m}_std"]
    return pct(row[m]) if std is None else f"{pct(row[m])} ± {pct(std)}"


def pooled_ci(row: dict[str, Any], m: str) -> str:
    """The pooled metric and its speaker-bootstrap CI: ``37.1 [30.8, 43.5]``."""
    return f"{pct(row[f'{m}_pooled'])} {ci_text(row[f'{m}_ci'])}"


def ci_text(ci: Sequence[float] | None) -> str:
    return "–" if not ci or not all(map(math.isfinite, ci)) else f"[{pct(ci[0])}, {pct(ci[1])}]"


def p_text(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def delta_text(d: float | None) -> str:
    return "–" if d is None or not math.isfinite(d) else f"{100 * d:+.1f}"


def cells(board: Board) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, body cells and legend lines shared by the text formats (bold as ``**``)."""
    m = board.metric
    others = [x for x in METRICS if x != m]
    header = ["condition", "runs", f"{METRIC_NAMES[m]} % (mean ± std)", "pooled [95 % CI]", "rank"]
    header += [f"{METRIC_NAMES[x]} %" for x in others]
    if board.baseline:
        header += [f"Δ {METRIC_NAMES[m]} vs {board.baseline}", "p (Holm)"]
    body = []
    for row in board.rows:
        name, value = row["condition"], mean_std(row, m)
        if row["best"]:
            name, value = f"**{name}**", f"**{value}**"
        elif row["not_worse_than_best"] and len(board.rows) > 1:
            name = f"{name} {MARK}"
        line = [name, str(row["runs"]), value, pooled_ci(row, m), str(row["rank"])]
        line += [mean_std(row, x) for x in others]
        if board.baseline:
            is_base = row["condition"] == board.baseline
            line += ["baseline" if is_base else delta_text(row["delta_vs_baseline"]),
                     "" if is_base else p_text(row["p_vs_baseline"])]
        body.append(line)
    return header, body, legend(board)


def legend(board: Board) -> list[str]:
    lines = []
    if len(board.rows) > 1 and not board.n_pairs:
        lines.append(f"**bold**: best mean {METRIC_NAMES[board.metric]}; no pair could be tested "
                     "(see below).")
    elif len(board.rows) > 1:
        lines.append(f"**bold**: best mean {METRIC_NAMES[board.metric]}; {MARK}: not significantly "
                     f"worse than the best (paired speaker bootstrap, Holm over {board.n_pairs} "
                     f"pair{'s' if board.n_pairs != 1 else ''}, alpha {board.alpha:g}). pooled: "
                     "the metric of all test predictions pooled over folds and seeds; CI: speaker "
                     "bootstrap.")
    if board.baseline:
        lines.append(f"Δ: pooled {METRIC_NAMES[board.metric]} minus the baseline's, in points; "
                     "p: paired speaker bootstrap, Holm-adjusted.")
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
        right = {1, 4} | set(range(5, len(header)))
        text = [f"### {md_escape(board.table.title)}", "", *_pipe_table(header, body, right), ""]
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
        lines += [r"\bottomrule", r"\end{tabular}"]
        caption = " ".join([tex(board.table.title) + "."] + [tex(n) for n in notes]
                           + [tex(board.signature)])
        lines += [rf"\caption{{{caption}}}", r"\end{table}", ""]
        parts.append("\n".join(lines))
    return "% needs \\usepackage{booktabs}\n" + "\n".join(parts)


JSON_KEYS = ("condition", "upstream", "method", "options", "dataset", "protocol",
             "dataset_options", "budget", "budget_signature", "runs", "folds", "seeds",
             "uar", "uar_std", "uar_ci", "war", "war_std", "war_ci", "macro_f1",
             "macro_f1_std", "macro_f1_ci", "rank")


def to_rows(boards: Sequence[Board]) -> list[dict[str, Any]]:
    """Flat JSON rows, table by table, best first; each carries its table's signature."""
    out = []
    for board in boards:
        for row in board.rows:
            d = {k: row[k] for k in JSON_KEYS}
            d.update(metric=board.metric, best=row["best"],
                     not_worse_than_best=row["not_worse_than_best"],
                     uar_pooled=row["uar_pooled"], speakers=row["speakers"],
                     vs_best=row["vs_best"], run_ids=row["run_ids"],
                     signature=board.signature)
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
            "method", "options", "runs", "rank", "uar", "uar_std", "uar_ci_low", "uar_ci_high",
            "war", "war_std", "macro_f1", "macro_f1_std", "best", "not_worse_than_best",
            "delta_vs_baseline", "p_vs_baseline", "signature")


def to_csv(boards: Sequence[Board]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_KEYS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in json_ready(to_rows(boards)):
        row["options"] = format_options(row["options"])
        row["uar_ci_low"], row["uar_ci_high"] = row["uar_ci"] or (None, None)
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
        from .html import to_html

        return to_html(boards, **html_args)
    raise ConfigError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
