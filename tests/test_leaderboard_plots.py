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
