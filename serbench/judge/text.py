"""How numbers and names are written in verdicts and tables (terminal, markdown, LaTeX, the page):
percentages, spreads, confidence intervals, p-values, deltas, escapes."""

from __future__ import annotations

import math
from typing import Any, Sequence

METRIC_NAMES = {"uar": "UAR", "war": "WAR", "macro_f1": "macro-F1"}


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


def md_escape(text: str) -> str:
    """A cell or title safe in Markdown: ``|`` escaped, line breaks folded, raw HTML inert."""
    text = " ".join(text.split())
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|"))


def pipe_table(header: list[str], body: list[list[str]], right: set[int]) -> list[str]:
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


def tex(text: str) -> str:
    out = "".join(_TEX.get(ch, ch) for ch in text)
    while "**" in out:
        head, _, rest = out.partition("**")
        inner, _, tail = rest.partition("**")
        out = f"{head}\\textbf{{{inner}}}{tail}"
    return out


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
        "±": r"$\pm$", "Δ": r"$\Delta$", "†": r"$^\dagger$", "–": "--", "·": r"$\cdot$",
        "<": r"$<$", ">": r"$>$"}
