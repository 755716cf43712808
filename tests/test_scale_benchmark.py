"""``benchmarks/scale.py`` keeps working: two tiny sizes, every step measured, an exponent each."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = ["load (parse)", "load (cached)", "plan (hash audio)", "plan (cached)", "fill", "sweep",
         "leaderboard", "compare"]


def test_the_scale_benchmark_prints_an_exponent_per_step(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "scale.py"), "--sizes", "150,300",
         "--folds", "1", "--seeds", "1", "--workdir", str(tmp_path), "--json",
         str(tmp_path / "scale.json")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    head = lines.index("| step | 150 s | 300 s | time exp | 150 MB | 300 MB | mem exp | anon exp |")
    rows = [line.strip("| ").split(" | ") for line in lines[head + 2:]]
    assert [r[0] for r in rows] == STEPS
    number = r"-?\d+(\.\d+)?(e[-+]\d+)?"
    memory = r"\d+ \(\d+\)"  # resident MB gained (anonymous MB)
    cells = [number, number, rf"{number}( \(!\))?", memory, memory, number, number]
    assert all(len(r) == 8 and all(re.fullmatch(p, c) for p, c in zip(cells, r[1:], strict=True))
               for r in rows), rows
    # the corpus: 300 files written once, one manifest per size, read by the manifest plugin
    assert len(list((tmp_path / "corpus" / "audio").rglob("u*.*"))) == 300
    assert (tmp_path / "corpus" / "manifest-150.csv").read_text().count("\n") == 151
    # the sweep stored linear and mlp on one fold and one seed, for each size
    for size in (150, 300):
        runs = tmp_path / "sizes" / str(size) / "results" / "runs"
        assert len([p for p in runs.iterdir() if (p / "run.json").is_file()]) == 2
    measured = json.loads((tmp_path / "scale.json").read_text())
    assert measured["sizes"] == [150, 300] and list(measured["steps"]) == STEPS
