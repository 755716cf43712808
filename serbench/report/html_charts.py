"""The page's drawings, as inline SVG and coloured HTML tables (no library, no network).

Each drawing carries its own text: the forest chart's marks have ``role="img"`` and an
``aria-label`` with the numbers (the leaderboard table beside them is the full text
alternative), and the significance matrix and confusion matrices are HTML tables whose cells
hold the numbers, with the details on hover (``title``). Colours come from the page's CSS
classes, so dark mode and print restyle them.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, Sequence

from serbench.judge.ranking import Board
from serbench.judge.text import METRIC_NAMES, ci_text, delta_text, p_text, pct

WIDTH, HEIGHT, PAD = 150, 20, 7  # one forest-plot cell, in px


class Scale:
    """Maps a metric in [0, 1] onto the forest cells' x axis; ticks every 5 or 10 points."""

    def __init__(self, values: Sequence[float]) -> None:
        finite = [100 * v for v in values if v is not None and math.isfinite(v)] or [0.0, 100.0]
        lo, hi = min(finite), max(finite)
        step = 10 if hi - lo > 30 else 5
        self.lo = max(0.0, math.floor(lo / step) * step - (step if lo - step >= 0 else 0))
        self.hi = min(100.0, math.ceil(hi / step) * step)
        if self.hi <= self.lo:
            self.lo, self.hi = max(0.0, self.lo - step), min(100.0, self.hi + step)
        self.step = step

    def x(self, value: float) -> float:
        span = self.hi - self.lo
        return round(PAD + (100 * value - self.lo) / span * (WIDTH - 2 * PAD), 1)

    def ticks(self) -> list[float]:
        n = int(round((self.hi - self.lo) / self.step))
        return [self.lo + i * self.step for i in range(n + 1)]


def board_scale(board: Board) -> Scale:
    m = board.metric
    values = [v for r in board.rows for v in [r[m], *(r[f"{m}_ci"] or [])]]
    values += [v for r in board.rows for v, _ in references(r, m)]
    return Scale(values)


def references(row: dict[str, Any], metric: str) -> list[tuple[float, dict[str, Any]]]:
    """The row's published references for ``metric`` as (value in [0, 1], reference); a
    reference's value is its ``published`` number (serbench.judge.references' rows)."""
    refs = row.get("references") or []
    out = []
    for ref in [refs] if isinstance(refs, dict) else refs:
        if not isinstance(ref, dict) or ref.get("published") is None:
            continue
        named = str(ref.get("metric") or metric).lower().replace("-", "_")
        if named not in (metric, METRIC_NAMES[metric].lower().replace("-", "_")):
            continue
        value = float(ref["published"])
        out.append((value / 100 if value > 1 else value, ref))
    return out


def axis_svg(scale: Scale, label: str) -> str:
    """The forest column's axis, drawn in its header cell."""
    marks = "".join(
        f'<line x1="{scale.x(t / 100)}" x2="{scale.x(t / 100)}" y1="14" y2="18"/>'
        f'<text x="{scale.x(t / 100)}" y="11" text-anchor="middle">{t:g}</text>'
        for t in scale.ticks())
    return (f'<svg class="axis" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'role="img" aria-label="{escape(label)} axis from {scale.lo:g} to {scale.hi:g} %">'
            f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="18" y2="18"/>{marks}</svg>')


def forest_svg(row: dict[str, Any], board: Board, scale: Scale) -> str:
    """One condition's pooled metric with its 95 % CI (and published references as diamonds)."""
    m, name = board.metric, METRIC_NAMES[board.metric]
    kind = "best" if row["best"] else ("nw" if row["not_worse_than_best"] and len(board.rows) > 1
                                       else "other")
    ci = row[f"{m}_ci"]
    mid, parts = HEIGHT / 2, []
    for t in scale.ticks():
        parts.append(f'<line class="grid" x1="{scale.x(t / 100)}" x2="{scale.x(t / 100)}" '
                     f'y1="0" y2="{HEIGHT}"/>')
    if ci and all(map(math.isfinite, ci)):
        parts.append(f'<line class="ci" x1="{scale.x(ci[0])}" x2="{scale.x(ci[1])}" y1="{mid}" '
                     f'y2="{mid}"/>')
    x = scale.x(row[m])
    shape = (f'<rect class="pt" x="{x - 4.5}" y="{mid - 4.5}" width="9" height="9"/>'
             if kind == "best" else f'<circle class="pt" cx="{x}" cy="{mid}" r="4"/>')
    parts.append(shape)
    label = f"{row['condition']}: {name} {pct(row[m])} %, 95 % CI {ci_text(ci)}"
    for value, ref in references(row, m):
        rx = scale.x(value)
        parts.append(f'<path class="ref" d="M{rx} {mid - 6}l5 6-5 6-5-6z"/>')
        label += f"; published {pct(value)} ({ref.get('source') or 'reference'})"
    label += {"best": "; best", "nw": "; not significantly worse than the best",
              "other": ""}[kind]
    return (f'<svg class="forest {kind}" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">'
            f"<title>{escape(label)}</title>{''.join(parts)}</svg>")


def oriented(pair: dict[str, Any], name: str) -> dict[str, Any]:
    """``pair`` as ``name`` minus the other condition."""
    if pair["condition"] == name:
        return pair
    ci = pair["delta_ci"]
    return dict(pair, condition=pair["against"], against=pair["condition"], delta=-pair["delta"],
                delta_ci=[-ci[1], -ci[0]] if ci else None)


def matrix_html(board: Board) -> str:
    """Every pair once (row minus column, upper triangle), coloured by the sign of Δ and by the
    paired bootstrap's Holm-adjusted p over all pairs of the table."""
    rows = board.rows
    name = METRIC_NAMES[board.metric]
    index = {frozenset((p["condition"], p["against"])): p for p in board.pairs}
    head = "".join(f'<th scope="col" title="{escape(r["condition"])}">{i + 2}</th>'
                   for i, r in enumerate(rows[1:]))
    body = []
    for i, r in enumerate(rows[:-1]):
        a = r["condition"]
        cells = [f'<th scope="row"><span class="num">{i + 1}</span> {escape(a)}</th>']
        cells += ['<td class="void"></td>'] * i
        for other in rows[i + 1:]:
            b = other["condition"]
            found = index.get(frozenset((a, b)))
            p = oriented(found, a) if found else {
                "condition": a, "against": b, "delta": r[board.metric] - other[board.metric],
                "delta_ci": None, "untested": "no pair computed"}
            cells.append(_matrix_cell(p, board.alpha, name))
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<table class="matrix" aria-label="pairwise Δ{escape(name)}, row minus column">'
            f'<thead><tr><th scope="col">row − column</th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _matrix_cell(p: dict[str, Any], alpha: float, name: str) -> str:
    d, q = p["delta"], p.get("p_bootstrap_holm")
    tested = q is not None and math.isfinite(q)
    if not tested:
        cls, verdict = "untested", f"not tested: {p.get('untested') or 'see the notes'}"
    elif q < alpha:
        cls, verdict = ("pos" if d > 0 else "neg"), "significant"
    else:
        cls, verdict = ("npos" if d > 0 else "nneg"), "not significant"
    tip = (f"{p['condition']} − {p['against']}: Δ{name} {delta_text(d)} points, 95 % CI "
           f"{_delta_ci(p['delta_ci'])}, p (Holm, all pairs) {p_text(q)}: {verdict}")
    return (f'<td class="{cls}" data-a="{escape(p["condition"])}" data-b="{escape(p["against"])}"'
            f' data-delta="{d!r}" title="{escape(tip)}">{delta_text(d)}</td>')


def _delta_ci(ci: Sequence[float] | None) -> str:
    if not ci:
        return "–"
    return f"[{delta_text(ci[0])}, {delta_text(ci[1])}]"


def heat(share: float) -> str:
    """The inline style giving a cell its colour strength (the colour is the CSS's)."""
    return f'style="--v:{share:.2f}"'
