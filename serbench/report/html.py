"""The leaderboard as one self-contained web page (inline CSS, JS and SVG; no network).

Per table: the protocol signature as a readable block; the sortable table with a forest chart of
the ranked metric and its CI in every row (so sorting the table re-sorts the chart), published
references beside the measured values when the runs carry them, and a button per row that
expands the condition's confusion matrix, per-speaker UAR and runs; then the pairwise
significance matrix (``compare``'s Δ for every pair, coloured by sign and by the Holm-adjusted
p over all pairs). Run links are relative to the folder the page is written to, so the page and
the results folder move together. Every name from a plugin or a results folder is escaped.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any, Sequence

from serbench import __version__
from serbench.judge import references as reference_tables
from serbench.judge.conditions import Condition
from serbench.judge.metrics import METRICS
from serbench.judge.names import format_options
from serbench.judge.ranking import MARK, Board
from serbench.judge.text import (
    METRIC_NAMES,
    delta_text,
    display_name,
    mean_std,
    p_text,
    pct,
    pooled_ci,
    steps_text,
)
from serbench.report.html_charts import axis_svg, board_scale, forest_svg, matrix_html, references
from serbench.report.html_details import detail_html
from serbench.report.html_style import CSS, JS
from serbench.report.leaderboard import legend


def _num(x: Any) -> str:
    return "" if x is None else repr(float(x))


def _th(label: str, numeric: bool, first: str = "ascending", sort: str | None = None,
        inner: str | None = None) -> str:
    attrs = f' scope="col" data-type="{"num" if numeric else "text"}" data-first="{first}"'
    if sort:
        attrs += f' aria-sort="{sort}"'
    return f"<th{attrs}>{inner if inner is not None else escape(label)}</th>"


def _td(text: str, value: Any, html: str | None = None, cls: str = "") -> str:
    inner = html if html is not None else escape(text)
    klass = f' class="{cls}"' if cls else ""
    return f'<td{klass} data-value="{escape(str(value))}">{inner}</td>'


def _reference_cell(row: dict[str, Any], metric: str) -> str:
    """Published values of the row's metric, each with where it lies against the measured CI."""
    refs = references(row, metric)
    if not refs:
        return _td("–", "")
    ci = row[f"{metric}_ci"]
    items = []
    for value, ref in refs:
        where = ref.get("verdict") or ("" if not ci else "reproduced" if ci[0] <= value <= ci[1]
                                       else "below" if value < ci[0] else "above")
        source = " · ".join(str(ref[k]) for k in ("source", "protocol") if ref.get(k))
        items.append(f'<span class="ref" title="{escape(source)}">{pct(value)} '
                     f'<small>{escape(str(where))}</small></span>')
    return _td("", _num(refs[0][0]), "<br>".join(items))


def _board_html(board: Board, index: int, link_base: Path) -> str:
    m = board.metric
    others = [x for x in METRICS if x != m]
    name = METRIC_NAMES[m]
    scale = board_scale(board)
    has_refs = any(references(r, m) for r in board.rows)
    any_tuned = any(r["tuned"] for r in board.rows)
    heads = [_th("rank", True, sort="ascending"), _th("condition", False),
             _th(f"{name} chart", True, "descending",
                 inner=f'<span class="sr">{name} chart</span>{axis_svg(scale, name)}'),
             _th(f"{name} % pooled [95 % CI]", True, "descending")]
    heads += [_th("published", True, "descending")] if has_refs else []
    heads += [_th("runs", True, "descending"), _th(f"{name} % runs (mean ± std)", True,
                                                   "descending")]
    heads += [_th(f"{METRIC_NAMES[x]} % pooled", True, "descending") for x in others]
    heads += [_th("steps (stopped by)", True)] + ([_th("tuned", False)] if any_tuned else [])
    heads += [_th("p vs best (Holm)", True)]
    if board.baseline:
        vs = f'Δ {name} vs <span title="{escape(board.baseline)}">baseline</span>'
        heads += [_th("", True, "descending", inner=vs), _th("p (Holm)", True)]
    conds = {c.name: c for c in board.table.conditions}
    body = []
    for i, row in enumerate(board.rows):
        detail_id = f"detail-{index}-{i}"
        label = escape(display_name(row))
        if not row["best"] and row["not_worse_than_best"] and len(board.rows) > 1:
            label += (f' <span class="mark" title="not significantly worse than the best">'
                      f"{MARK}</span>")
        button = (f'<button type="button" class="expand" aria-expanded="false" '
                  f'aria-controls="{detail_id}">{label}</button>')
        vs_best = row["vs_best"] or {}
        cells = [_td(str(row["rank"]), row["rank"]), _td(row["condition"], row["condition"],
                                                         button, "name"),
                 _td("", _num(row[m]), forest_svg(row, board, scale), "chart"),
                 _td(pooled_ci(row, m), _num(row[m]))]
        cells += [_reference_cell(row, m)] if has_refs else []
        cells += [_td(str(row["runs"]), row["runs"]),
                  _td(mean_std(row, m), _num(row[f"{m}_runs_mean"]))]
        cells += [_td(pct(row[x]), _num(row[x])) for x in others]
        tuned = ", ".join(row["tuned"]) or "–"
        cells += [_td(steps_text(row), _num(row["steps_max"]))]
        cells += [_td(tuned, tuned)] if any_tuned else []
        p_best = vs_best.get("p_bootstrap_holm")
        cells.append(_td(p_text(p_best) if vs_best else "", _num(p_best)))
        if board.baseline:
            base = row["condition"] == board.baseline
            d, p = row["delta_vs_baseline"], row["p_vs_baseline"]
            cells += [_td("baseline" if base else delta_text(d), "" if base else _num(d)),
                      _td("" if base else p_text(p), _num(p))]
        cls = ' class="best"' if row["best"] else ""
        body.append(f'<tr{cls}>{"".join(cells)}</tr>'
                    f'<tr class="detail" id="{detail_id}" hidden><td colspan="{len(heads)}">'
                    f"{detail_html(conds[row['condition']], link_base, m)}</td></tr>")
    notes = "".join(f'<p class="legend">{escape(n.replace("**", ""))}</p>' for n in legend(board))
    if board.baseline:
        notes += f'<p class="legend">baseline: {escape(board.baseline)}</p>'
    matrix = ""
    if len(board.rows) > 1:
        matrix = (f'<h3>Every pair: Δ{escape(name)} (row − column), points</h3>'
                  f'<p class="legend"><span class="key pos"></span> row significantly better '
                  f'<span class="key neg"></span> row significantly worse <span class="key npos">'
                  f'</span> not significant <span class="key untested"></span> not tested · '
                  f"paired speaker bootstrap with model variance, Holm over all "
                  f"{board.n_pairs} tested pairs, alpha {board.alpha:g}; hover a cell for its CI "
                  f"and p (as <code>serbench compare</code> gives them)</p>"
                  f'<div class="scroll">{matrix_html(board)}</div>')
    return (f'<section id="table-{index}" aria-labelledby="title-{index}">'
            f'<h2 id="title-{index}">{escape(board.table.title)}</h2>'
            f"{_signature_block(board)}"
            f'<div class="scroll"><table class="board"><thead><tr>{"".join(heads)}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>{notes}{matrix}"
            f'<p class="signature">{escape(board.signature)}</p></section>')


def _signature_block(board: Board) -> str:
    """The protocol a screenshot must carry, one fact per line."""
    t = board.table
    versions = _versions({(k, v) for c in t.conditions for r in c.runs
                          for k, v in r.get("versions") or ()})
    normalize = sorted({str(c.options.get("normalize", "none")) for c in t.conditions})
    modality = sorted({c.modality for c in t.conditions})
    tests = board.signature.split(" · tests: ", 1)[-1]
    facts = [("versions", versions or f"serbench {__version__}"),
             ("data", f"{t.dataset}{format_options(t.dataset_options)} / {t.protocol}"),
             ("budget", f"{t.budget} ({t.budget_signature})"
              + "".join(f" · {x}" for x in t.setup())),
             ("seeds", ", ".join(str(s) for s in t.seeds)),
             ("folds", f"{len(t.folds)}: " + ", ".join(str(f) for f in t.folds)),
             ("normalisation", ", ".join(normalize)), ("modality", ", ".join(modality)),
             ("tests", tests)]
    rows = "".join(f'<div{" class=wide" if k in ("tests", "versions") else ""}><dt>{k}</dt>'
                   f"<dd>{escape(v)}</dd></div>" for k, v in facts)
    origins = sorted({_origin(c) for c in t.conditions})
    made = "".join(f"<li><code>{escape(o)}</code></li>" for o in origins)
    rows += (f'<div class="wide"><dt>produced by</dt><dd><details><summary>{len(origins)} '
             f"command{'s' if len(origins) != 1 else ''} / suites</summary><ul>{made}</ul>"
             "</details></dd></div>")
    return f'<dl class="sigblock">{rows}</dl>'


def _versions(pairs: set[tuple[str, str]]) -> str:
    """``serbench 0.1.0 · plugins 0.1.0: baselines, clap``: plugins grouped by version."""
    by_version: dict[str, list[str]] = {}
    for name, version in pairs:
        if name.startswith("plugin "):
            by_version.setdefault(str(version), []).append(name.removeprefix("plugin "))
    core = sorted(f"{k} {v}" for k, v in pairs if not k.startswith("plugin "))
    plugins = [f"plugins {v}: {', '.join(sorted(names))}"
               for v, names in sorted(by_version.items())]
    return " · ".join(core + plugins)


def _origin(cond: Condition) -> str:
    """The suite (name and hash) the runs record, else the ``serbench run`` command they match."""
    record = cond.store.read_record(cond.runs[0]["run_id"])
    suite = record.get("suite")
    if isinstance(suite, dict):
        digest = suite.get("hash") or suite.get("sha256") or ""
        return f"suite {suite.get('name') or suite.get('path') or '?'} {digest}".strip()
    if suite:
        return f"suite {suite}"
    if record.get("command"):
        return str(record["command"])
    opts = "".join(f" --option {k}={v}" for k, v in sorted(cond.options.items()))
    dopts = "".join(f" --dataset-option {k}={v}" for k, v in sorted(cond.dataset_options.items()))
    return (f"serbench run --dataset {cond.dataset}{dopts} --protocol {cond.protocol} "
            f"--method {cond.method}{opts} --upstream {cond.upstream} --budget {cond.budget} "
            f"--seeds {len(cond.seeds)}")


def to_html(boards: Sequence[Board], link_base: Path | str = ".") -> str:
    """The page; run links are relative to ``link_base`` (the folder the page is written to)."""
    base = Path(link_base).resolve()
    metric = METRIC_NAMES[boards[0].metric] if boards else "UAR"
    sections = "".join(_board_html(b, i, base) + reference_tables.html(b)
                       for i, b in enumerate(boards))
    refs = any(references(r, b.metric) for b in boards for r in b.rows)
    published = ", ◆ published" if refs else ""
    toc = ""
    if len(boards) > 1:
        toc = "<nav><ul>" + "".join(f'<li><a href="#table-{i}">{escape(b.table.title)}</a></li>'
                                    for i, b in enumerate(boards)) + "</ul></nav>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="color-scheme" content="light dark"><link rel="icon" href="data:,">'
        f"<title>serbench leaderboard</title><style>{CSS}</style></head><body>"
        f'<header><h1>serbench leaderboard</h1><p class="meta">serbench {escape(__version__)} · '
        f"ranked by pooled {escape(metric)} over folds × seeds, 95 % CIs · "
        f"■ best, ● † not significantly worse than the best{published} · "
        "click a column header to sort, a condition to see where it fails</p></header>"
        f"<main>{toc}{sections}</main><script>{JS}</script></body></html>\n"
    )
