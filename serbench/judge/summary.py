"""The cross-dataset summary (as EmoBox reports it): per condition, mean UAR and mean rank over
the tables (datasets, within- or cross-corpus) of a results folder, and which it covers.

A condition is its method, options, upstream and budget; its rank in each table is the
leaderboard's (by the pooled metric, ties shared). Conditions that cover fewer datasets are not
comparable on the means alone, so the covered datasets are listed beside them.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Sequence

from serbench.judge.text import METRIC_NAMES, pct, pipe_table
from serbench.specs import ConfigError

FORMATS = ("md", "csv", "json")


def summarize(boards: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per condition, best mean rank first."""
    groups: dict[tuple[str, str], list[tuple[Any, dict[str, Any]]]] = {}
    for board in boards:
        for row in board.rows:
            groups.setdefault((row["condition"], row["budget"]), []).append((board, row))
    out = []
    for (name, budget), hits in groups.items():
        metric = hits[0][0].metric
        out.append({
            "condition": name, "budget": budget, "metric": metric, "datasets": len(hits),
            f"mean_{metric}": sum(r[metric] for _, r in hits) / len(hits),
            "mean_rank": sum(r["rank"] for _, r in hits) / len(hits),
            "covered": [f"{b.table.dataset}/{b.table.protocol}" for b, _ in hits],
        })
    return sorted(out, key=lambda r: (-r["datasets"], r["mean_rank"],
                                      -r[f"mean_{r['metric']}"], r["condition"]))


def render(rows: Sequence[dict[str, Any]], fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"--summary prints {', '.join(FORMATS)}; got --format {fmt}")
    if fmt == "json":
        return json.dumps(list(rows), indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["condition", "budget", "datasets", "mean", "metric", "mean_rank", "covered"])
        for r in rows:
            w.writerow([r["condition"], r["budget"], r["datasets"], r[f"mean_{r['metric']}"],
                        r["metric"], r["mean_rank"], ";".join(r["covered"])])
        return buf.getvalue()
    if not rows:
        return "no finished runs\n"
    name = METRIC_NAMES[rows[0]["metric"]]
    header = ["condition", "budget", "datasets", f"mean {name} %", "mean rank", "covered"]
    body = [[r["condition"], r["budget"], str(r["datasets"]), pct(r[f"mean_{r['metric']}"]),
             f"{r['mean_rank']:.2f}", ", ".join(r["covered"])] for r in rows]
    return "\n".join(["### Summary over datasets", "", *pipe_table(header, body, {2, 3, 4}), "",
                      f"mean {name}: of the pooled {name} of each table; rank: within each "
                      "table (1 = best); conditions covering more datasets first.", ""])
