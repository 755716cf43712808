"""``serbench plot``: PNG figures from a results folder; a clear line without matplotlib."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from serbench.cli import main

FIXED = Path(__file__).parent / "data" / "leaderboard" / "results"


def test_plot_writes_the_figures_of_every_table(tmp_path: Path, capsys) -> None:
    results = shutil.copytree(FIXED, tmp_path / "results")
    out = tmp_path / "figures"
    assert main(["plot", "--results", str(results), "--budget", "smoke", "--output",
                 str(out)]) == 0
    printed = capsys.readouterr().out.split()
    stem = "simulated_loso_speaker_smoke_ccb2000f23f8"
    assert sorted(Path(p).name for p in printed) == sorted([
        f"{stem}_uar.png", f"{stem}_speakers.png",
        f"{stem}_confusion_linear_fbank.png", f"{stem}_confusion_mlp_fbank.png",
        f"{stem}_confusion_linear_normalize=speaker_fbank.png"])
    import matplotlib.image

    for path in printed:
        image = matplotlib.image.imread(path)
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert image.shape[0] > 300 and image.shape[1] > 300  # 200 dpi, paper-ready
        assert image[..., :3].std() > 0.05  # something was drawn


def test_without_matplotlib_the_error_says_how_to_get_it(tmp_path: Path, capsys,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    results = shutil.copytree(FIXED, tmp_path / "results")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    assert main(["plot", "--results", str(results), "--output", str(tmp_path / "f")]) == 2
    assert capsys.readouterr().err == ("serbench: error: plots need matplotlib: pip install "
                                       "'serbench[plot]' (or pip install matplotlib)\n")
    assert not (tmp_path / "f").exists()


def test_long_condition_names_never_push_text_outside_the_figure(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from serbench.judge.conditions import load_tables
    from serbench.judge.ranking import build
    from serbench.report.plots import confusion_figure, fit_texts, metric_figure, speaker_figure
    from serbench.store import Store

    tables = load_tables(Store(shutil.copytree(FIXED, tmp_path / "results")), None, "smoke")
    for i, cond in enumerate(tables[0].conditions):  # the names of the sl_gemo runs
        cond.method, cond.upstream = "sl_gemo", "egemaps"
        cond.options = {"finetune_upstream": False, "text_encoder": f"minilm{i}"}
    [board] = build(tables[:1], n_boot=200)
    assert board.rows[0]["condition"].startswith(
        "sl_gemo[finetune_upstream=false,text_encoder=minilm")
    cond = tables[0].conditions[0]
    for fig in (metric_figure(plt, board), speaker_figure(plt, board),
                confusion_figure(plt, cond.name, cond.pooled)):
        fit_texts(fig)
        renderer = fig.canvas.get_renderer()
        texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()
                 and not _undrawn_tick(fig, t)]
        assert any(t.get_text() == board.table.title or t.get_text() == cond.name
                   for t in texts)
        for text in texts:
            box = text.get_window_extent(renderer)
            assert box.x0 >= 0 and box.y0 >= 0, text.get_text()
            assert box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1, text.get_text()
        plt.close(fig)


def _undrawn_tick(fig, text) -> bool:  # type: ignore[no-untyped-def]
    """A tick label outside its axis' view limits is not drawn (its position is stale)."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if text in (tick.label1, tick.label2):
                    return not lo - 1e-9 <= tick.get_loc() <= hi + 1e-9
    return False
