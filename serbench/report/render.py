"""One entry to every leaderboard format: markdown, LaTeX, CSV, JSON (serbench.report.leaderboard)
and the web page (serbench.report.html)."""

from __future__ import annotations

from typing import Any, Sequence

from serbench.judge.ranking import Board
from serbench.report.leaderboard import to_csv, to_json, to_latex, to_markdown
from serbench.specs import ConfigError

FORMATS = ("md", "latex", "csv", "json", "html")


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
