"""The leaderboard as one self-contained web page (inline CSS and JS, no network).

Like the SUPERB and HEAR leaderboards: one sortable table per dataset and budget, with CIs,
significance marks, the signature line, and links to every run's ``run.json``. Links are relative
to the folder the page is written to, so the page and the results folder can be moved together.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path
from typing import Any, Sequence

from . import __version__, references
from .conditions import natural
from .leaderboard import (
    MARK,
    METRIC_NAMES,
    Board,
    delta_text,
    display_name,
    legend,
    mean_std,
    p_text,
    pct,
    pooled_ci,
    steps_text,
)
from .metrics import METRICS

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:96rem;padding:0 1rem;color:#1d232a;background:#fff}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.15rem;margin:2rem 0 .5rem}
.meta,.signature,.legend{color:#55606b;font-size:.85rem}
.signature{font-family:ui-monospace,Menlo,Consolas,monospace}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{padding:.35rem .6rem;border-bottom:1px solid #dde3e8;text-align:right;vertical-align:top;
white-space:nowrap}
th:nth-child(2),td:nth-child(2){text-align:left}
th{cursor:pointer;user-select:none;background:#f4f6f8;white-space:nowrap}
th:focus{outline:2px solid #4a90d9}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tr.best td{font-weight:700}.mark{color:#1f6f43}
details summary{cursor:pointer}
details ul{margin:.25rem 0;padding:0;list-style:none;text-align:left;font-size:.8rem}
a{color:#1f5fa8}
"""

_JS = """
(function () {
  "use strict";
  function value(row, col, numeric) {
    var raw = row.cells[col].getAttribute("data-value");
    if (raw === null || raw === "") { return null; }
    return numeric ? parseFloat(raw) : raw.toLowerCase();
  }
  function sortTable(table, col) {
    var heads = table.tHead.rows[0].cells;
    var th = heads[col];
    var numeric = th.getAttribute("data-type") === "num";
    var current = th.getAttribute("aria-sort");
    var dir = current ? (current === "ascending" ? "descending" : "ascending")
                      : (th.getAttribute("data-first") || "ascending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, col, numeric), y = value(b, col, numeric);
      if (x === null || y === null) { return (x === null) - (y === null); }
      var c = x < y ? -1 : (x > y ? 1 : 0);
      return dir === "ascending" ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.board"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.tabIndex = 0;
      th.addEventListener("click", function () { sortTable(table, col); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortTable(table, col); }
      });
    });
  });
}());
"""


def _num(x: Any) -> str:
    return "" if x is None else repr(float(x))


def _th(label: str, numeric: bool, first: str = "ascending", sort: str | None = None) -> str:
    attrs = f' data-type="{"num" if numeric else "text"}" data-first="{first}"'
    if sort:
        attrs += f' aria-sort="{sort}"'
    return f"<th{attrs}>{escape(label)}</th>"


def _td(text: str, value: Any, html: str | None = None) -> str:
    inner = html if html is not None else escape(text)
    return f'<td data-value="{escape(str(value))}">{inner}</td>'


def _runs_cell(board: Board, row: dict[str, Any], link_base: Path) -> str:
    cond = next(c for c in board.table.conditions if c.name == row["condition"])
    items = []
    for r in sorted(cond.runs, key=lambda r: (natural(r["seed"]), natural(r["fold"]))):
        href = Path(os.path.relpath(cond.run_json(r["run_id"]), link_base)).as_posix()
        items.append(f'<li><a href="{escape(href)}">fold {escape(str(r["fold"]))} · seed '
                     f'{escape(str(r["seed"]))}</a></li>')
    inner = (f"<details><summary>{row['runs']}</summary><ul>{''.join(items)}</ul></details>")
    return _td(str(row["runs"]), row["runs"], inner)


def _board_html(board: Board, index: int, link_base: Path) -> str:
    m = board.metric
    others = [x for x in METRICS if x != m]
    name = METRIC_NAMES[m]
    heads = [_th("rank", True, sort="ascending"), _th("condition", False),
             _th("runs", True, "descending"),
             _th(f"{name} % pooled [95 % CI]", True, "descending"),
             _th(f"{name} % runs (mean ± std)", True, "descending")]
    heads += [_th(f"{METRIC_NAMES[x]} % pooled", True, "descending") for x in others]
    heads += [_th("steps (stopped by)", True), _th("tuned", False), _th("p vs best (Holm)", True)]
    if board.baseline:
        heads += [_th(f"Δ {name} vs {board.baseline}", True, "descending"), _th("p (Holm)", True)]
    body = []
    for row in board.rows:
        label = escape(display_name(row))
        if not row["best"] and row["not_worse_than_best"] and len(board.rows) > 1:
            label += (f' <span class="mark" title="not significantly worse than the best">'
                      f"{MARK}</span>")
        vs_best = row["vs_best"] or {}
        cells = [_td(str(row["rank"]), row["rank"]), _td(row["condition"], row["condition"], label),
                 _runs_cell(board, row, link_base), _td(pooled_ci(row, m), _num(row[m])),
                 _td(mean_std(row, m), _num(row[f"{m}_runs_mean"]))]
        cells += [_td(pct(row[x]), _num(row[x])) for x in others]
        tuned = ", ".join(row["tuned"]) or "–"
        cells += [_td(steps_text(row), _num(row["steps_max"])), _td(tuned, tuned)]
        p_best = vs_best.get("p_bootstrap_holm")
        cells.append(_td(p_text(p_best) if vs_best else "", _num(p_best)))
        if board.baseline:
            base = row["condition"] == board.baseline
            d, p = row["delta_vs_baseline"], row["p_vs_baseline"]
            cells += [_td("baseline" if base else delta_text(d), "" if base else _num(d)),
                      _td("" if base else p_text(p), _num(p))]
        cls = ' class="best"' if row["best"] else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    notes = "".join(f'<p class="legend">{escape(n.replace("**", ""))}</p>' for n in legend(board))
    return (f'<section id="table-{index}"><h2>{escape(board.table.title)}</h2>'
            f'<div class="scroll"><table class="board"><thead><tr>{"".join(heads)}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>{notes}"
            f'<p class="signature">{escape(board.signature)}</p></section>')


def to_html(boards: Sequence[Board], link_base: Path | str = ".") -> str:
    """The page; run links are relative to ``link_base`` (the folder the page is written to)."""
    base = Path(link_base).resolve()
    metric = METRIC_NAMES[boards[0].metric] if boards else "UAR"
    sections = "".join(_board_html(b, i, base) + references.html(b) for i, b in enumerate(boards))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>serbench leaderboard</title><style>{_CSS}</style></head><body>"
        f'<h1>serbench leaderboard</h1><p class="meta">serbench {escape(__version__)} · '
        f"ranked by pooled {escape(metric)} over folds × seeds · click a column header to sort</p>"
        f"{sections}<script>{_JS}</script></body></html>\n"
    )
