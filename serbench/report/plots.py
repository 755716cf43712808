"""PNG figures for papers: metric with CIs per condition, confusion matrices, per-speaker UAR.

matplotlib is the optional extra ``serbench[plot]``; it is imported only here, when a plot is made.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from serbench.judge.metrics import metric_from_confusion
from serbench.judge.ranking import Board
from serbench.judge.text import METRIC_NAMES
from serbench.specs import ConfigError


def _pyplot() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise ConfigError("plots need matplotlib: pip install 'serbench[plot]' "
                          "(or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", text).strip("_")


def plot_boards(boards: Sequence[Board], out_dir: Path) -> list[Path]:
    """Write every table's figures into ``out_dir``; returns the files written."""
    plt = _pyplot()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create plot folder {out_dir}: {exc.strerror}") from None
    written: list[Path] = []
    for board in boards:
        t = board.table
        stem = slug(f"{t.dataset}_{t.protocol}_{t.budget}_{t.budget_signature}")
        written.append(_metric_plot(plt, board, out_dir / f"{stem}_{board.metric}.png"))
        written.append(_speaker_plot(plt, board, out_dir / f"{stem}_speakers.png"))
        for cond in sorted(t.conditions, key=lambda c: c.name):
            path = out_dir / f"{stem}_confusion_{slug(cond.name)}.png"
            written.append(_confusion_plot(plt, cond.name, cond.pooled, path))
    return written


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fit_texts(fig)
    fig.savefig(path, dpi=200)
    plt.close(fig)
    return path


def text_overflow(fig: Any) -> tuple[float, float, float, float]:
    """Inches of drawn artists (titles, labels, tick labels, legends) beyond the figure's left,
    right, bottom and top edges; 0 where they lie inside."""
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())
    box = fig.bbox_inches
    return (max(0.0, box.x0 - drawn.x0), max(0.0, drawn.x1 - box.x1),
            max(0.0, box.y0 - drawn.y0), max(0.0, drawn.y1 - box.y1))


def fit_texts(fig: Any, tries: int = 4) -> None:
    """Lay out, then widen / heighten the figure until no title, label or tick label is clipped
    (long condition names such as ``sl_gemo[finetune_upstream=false,...]/egemaps``)."""
    for _ in range(tries):
        fig.tight_layout()
        fig.canvas.draw()
        left, right, bottom, top = text_overflow(fig)
        if max(left, right, bottom, top) <= 0:
            return
        width, height = fig.get_size_inches()
        fig.set_size_inches(width + 2 * max(left, right) + 0.1,
                            height + 2 * max(bottom, top) + 0.1)


def _metric_plot(plt: Any, board: Board, path: Path) -> Path:
    return _save(plt, metric_figure(plt, board), path)


def metric_figure(plt: Any, board: Board) -> Any:
    """Pooled metric of each condition with its 95 % bootstrap CI, best on top."""
    m, rows = board.metric, board.rows
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(rows) + 1.4))
    y = np.arange(len(rows))[::-1]
    pooled = np.array([100 * r[f"{m}_pooled"] for r in rows])
    ci = np.array([[100 * v for v in r[f"{m}_ci"]] for r in rows])
    err = np.abs(np.vstack([pooled - ci[:, 0], ci[:, 1] - pooled]))
    colors = ["#1f5fa8" if r["not_worse_than_best"] else "#8a949e" for r in rows]
    for i, color in enumerate(colors):
        ax.errorbar(pooled[i], y[i], xerr=err[:, i:i + 1], fmt="none", ecolor=color, capsize=3,
                    lw=1.2)
    ax.scatter(pooled, y, c=colors, zorder=3, s=22)
    ax.set_yticks(y, [r["condition"] for r in rows])
    ax.set_xlabel(f"{METRIC_NAMES[m]} % (pooled, 95 % speaker-bootstrap CI)")
    ax.set_title(board.table.title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _speaker_plot(plt: Any, board: Board, path: Path) -> Path:
    return _save(plt, speaker_figure(plt, board), path)


def speaker_figure(plt: Any, board: Board) -> Any:
    """UAR of every test speaker (pooled over seeds), one line per condition."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    conds = [next(c for c in board.table.conditions if c.name == row["condition"])
             for row in board.rows]
    names = sorted({s for c in conds for s in c.pooled.speaker_names})
    for cond in conds:
        pooled = cond.pooled
        uar = 100 * np.asarray(metric_from_confusion(pooled.speaker_confusions(), "uar"))
        x = [names.index(s) for s in pooled.speaker_names]
        ax.plot(x, uar, marker="o", ms=4, lw=1, label=cond.name)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_xlabel("test speaker")
    ax.set_ylabel("UAR % per speaker")
    ax.set_title(board.table.title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    return fig


def _confusion_plot(plt: Any, name: str, pooled: Any, path: Path) -> Path:
    return _save(plt, confusion_figure(plt, name, pooled), path)


def confusion_figure(plt: Any, name: str, pooled: Any) -> Any:
    """Row-normalised pooled confusion matrix (rows true), recall in % on the diagonal."""
    conf = pooled.confusion()
    support = conf.sum(axis=1, keepdims=True)
    share = np.divide(conf, support, out=np.zeros_like(conf), where=support > 0) * 100
    k = len(pooled.labels)
    fig, ax = plt.subplots(figsize=(0.6 * k + 2.2, 0.6 * k + 1.8))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=100)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{share[i, j]:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 60 else "black")
    ax.set_xticks(range(k), pooled.labels, rotation=45, ha="right")
    ax.set_yticks(range(k), pooled.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(name, fontsize=9)
    return fig
