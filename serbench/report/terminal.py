"""Tables that fit the terminal: long cells wrap inside their column instead of widening the line.

The width is the terminal's (``COLUMNS`` when set, as ``shutil.get_terminal_size`` reads it),
100 when standard output is not a terminal and ``COLUMNS`` is unset.
"""

from __future__ import annotations

import shutil
import textwrap
from typing import Any, Sequence

GAP = 2  # tabulate's "simple" format puts two spaces between columns
HEADER_PADDING = 2  # and makes a column at least its header plus two wide
MIN_WRAP = 12


def width() -> int:
    return max(40, shutil.get_terminal_size((100, 24)).columns)


def fit_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], wrap: Sequence[int],
              columns: int | None = None) -> str:
    """A tabulate table no wider than ``columns``: the columns in ``wrap`` share what is left."""
    from tabulate import tabulate

    columns = columns or width()
    text = [[str(c) for c in row] for row in rows]

    def natural(i: int) -> int:
        return max([len(headers[i]) + HEADER_PADDING] + [len(r[i]) for r in text])

    fixed = sum(natural(i) for i in range(len(headers)) if i not in wrap)
    room = columns - fixed - GAP * (len(headers) - 1)
    sizes: dict[int, int] = {}
    for n, i in enumerate(sorted(wrap, key=natural)):  # narrow ones first, the rest share
        share = room // (len(wrap) - n)
        sizes[i] = max(MIN_WRAP, min(natural(i), share))
        room -= sizes[i]
    body = [[textwrap.fill(c, sizes[i], break_on_hyphens=False) if i in sizes and c else c
             for i, c in enumerate(row)] for row in text]
    return tabulate(body, headers=list(headers), disable_numparse=True)
