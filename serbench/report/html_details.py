"""What a condition's row expands to: where the method fails, and the runs behind the numbers.

The confusion matrix counts every run's test predictions (summed over folds × seeds, so its
counts match the run records), shown row-normalised; per-class recall is its diagonal. Per-speaker
UAR uses the pooled predictions (seeds averaged), worst speaker first. The run list gives each
run's usage and a link to its ``run.json``, relative to the page.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from serbench.judge.conditions import Condition
from serbench.judge.metrics import metric_from_confusion
from serbench.judge.names import natural
from serbench.judge.text import pct
from serbench.report.html_charts import heat


def counts(cond: Condition) -> np.ndarray:
    """``(K, K)`` confusion counts (rows true) summed over every run of the condition."""
    return cond.pooled.model_conf.sum(axis=(0, 1)).astype(int)


def confusion_html(cond: Condition) -> str:
    conf = counts(cond)
    labels = cond.pooled.labels
    support = conf.sum(axis=1)
    head = "".join(f'<th scope="col">{escape(x)}</th>' for x in labels)
    body = []
    for k, true in enumerate(labels):
        cells = [f'<th scope="row">{escape(true)}</th>']
        for j, pred in enumerate(labels):
            share = conf[k, j] / support[k] if support[k] else 0.0
            tip = f"true {true}, predicted {pred}: {conf[k, j]} of {support[k]}"
            cls = "hit" if j == k else "miss"
            cells.append(f'<td class="heat {cls}" {heat(share)} data-count="{conf[k, j]}" '
                         f'title="{escape(tip)}">{pct(share, 0)}</td>')
        recall = conf[k, k] / support[k] if support[k] else None
        cells.append(f'<td class="recall">{pct(recall)}</td><td class="support">{support[k]}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    caption = (f"Confusion matrix, % of each true class (rows), summed over {len(cond.runs)} "
               "runs; hover a cell for its count")
    return (f'<table class="confusion"><caption>{caption}</caption><thead><tr>'
            f'<th scope="col">true \\ predicted</th>{head}<th scope="col">recall %</th>'
            f'<th scope="col">n</th></tr></thead><tbody>{"".join(body)}</tbody></table>')


def speakers_html(cond: Condition) -> str:
    """Per-speaker UAR, worst first, as bars with their numbers."""
    pooled = cond.pooled
    per = pooled.speaker_confusions()
    uars = [(float(metric_from_confusion(per[s], "uar")), name)
            for s, name in enumerate(pooled.speaker_names)]
    rows = "".join(
        f'<tr><th scope="row">{escape(name)}</th><td class="bar"><span style="width:'
        f'{100 * u:.1f}%"></span></td><td>{pct(u)}</td></tr>'
        for u, name in sorted(uars, key=lambda t: (t[0], natural(t[1]))))
    return (f'<table class="speakers"><caption>UAR % per test speaker (worst first)</caption>'
            f'<thead><tr><th scope="col">speaker</th><th scope="col"><span class="sr">bar'
            f'</span></th><th scope="col">UAR %</th></tr></thead><tbody>{rows}</tbody></table>')


def runs_html(cond: Condition, link_base: Path, metric: str) -> str:
    """Every run: fold, seed, its metric, usage, and its record."""
    body = []
    for r in sorted(cond.runs, key=lambda r: (natural(r["fold"]), natural(r["seed"]))):
        record = cond.store.read_record(r["run_id"])
        usage = record.get("usage") or {}
        seconds = record.get("duration_seconds")
        href = Path(os.path.relpath(cond.run_json(r["run_id"]), link_base)).as_posix()
        body.append(
            f'<tr><td>{escape(str(r["fold"]))}</td><td>{escape(str(r["seed"]))}</td>'
            f"<td>{pct(r.get(metric))}</td><td>{_text(usage.get('steps'))}</td>"
            f"<td>{_text(seconds)}</td><td>{escape(str(usage.get('stopped_by') or '–'))}</td>"
            f'<td><a href="{escape(href)}">{escape(r["run_id"])}</a></td></tr>')
    return (f'<table class="runs"><caption>Runs ({len(cond.runs)})</caption><thead><tr>'
            '<th scope="col">fold</th><th scope="col">seed</th>'
            f'<th scope="col">{escape(metric)} %</th><th scope="col">steps</th>'
            '<th scope="col">seconds</th><th scope="col">stopped by</th>'
            f'<th scope="col">run.json</th></tr></thead><tbody>{"".join(body)}</tbody></table>')


def _text(value: Any) -> str:
    if value is None:
        return "–"
    return escape(f"{value:g}" if isinstance(value, float) else str(value))


def detail_html(cond: Condition, link_base: Path, metric: str) -> str:
    return (f'<div class="detail-grid"><div>{confusion_html(cond)}</div>'
            f"<div>{speakers_html(cond)}</div><div class=\"runs-box\">"
            f"{runs_html(cond, link_base, metric)}</div></div>")
