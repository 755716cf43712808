"""Progress of `serbench run` on stderr when it is not a terminal: plain lines, none with --json."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def serbench(*args: str, every: str = "0") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SERBENCH_PROGRESS_SECONDS": every}
    return subprocess.run([sys.executable, "-m", "serbench.cli", *args], capture_output=True,
                          text=True, timeout=600, env=env)


def progress_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("serbench: progress: ")]


def test_plain_progress_lines_show_the_sweep_and_the_current_run(data_root: Path,
                                                                 tmp_path: Path) -> None:
    args = ["run", "--method", "linear", "--upstream", "fbank", "--dataset", "emodb",
            "--data-root", str(data_root), "--budget", "smoke", "--seeds", "1", "--folds", "03",
            "--results", str(tmp_path / "results")]
    out = serbench(*args)
    assert out.returncode == 0, out.stderr
    lines = progress_lines(out.stderr)
    step = re.compile(r"serbench: progress: 0/1 runs done, 0 skipped, 0 failed, "
                      r"ETA (\?|0:0\d:\d\d) \| "
                      r"linear/fbank fold 03 seed 0: train step (\d+)/40, best dev UAR "
                      r"(–|0\.\d{3}), (\d+) s of budget left$")
    steps = [step.match(line) for line in lines[:-1]]
    assert all(steps), lines
    assert [int(m.group(2)) for m in steps] == list(range(1, 41))  # every step (interval 0)
    # no rate before the second step; then the rest of the run from its step rate
    assert steps[0].group(1) == "?" and all(m.group(1) != "?" for m in steps[1:])
    assert {m.group(3) for m in steps[:20]} == {"–"}  # no dev evaluation before step 20
    assert all(m.group(3) != "–" for m in steps[20:])
    assert all(0 < int(m.group(4)) <= 120 for m in steps)  # the smoke budget's 120 s
    assert lines[-1] == "serbench: progress: 1/1 runs done, 0 skipped, 0 failed, ETA 0:00:00"

    again = serbench(*args)
    assert progress_lines(again.stderr) == [
        "serbench: progress: 1/1 runs done, 1 skipped, 0 failed, ETA 0:00:00"]
    assert progress_lines(serbench(*args, "--json").stderr) == []
    assert progress_lines(serbench(*args, "--quiet").stderr) == []


def test_progress_lines_are_periodic(data_root: Path, tmp_path: Path) -> None:
    out = serbench("run", "--method", "linear", "--upstream", "fbank", "--dataset", "emodb",
                   "--data-root", str(data_root), "--budget", "smoke", "--seeds", "1",
                   "--folds", "16",
                   "--results", str(tmp_path / "results"), every="3600")
    assert out.returncode == 0, out.stderr
    lines = progress_lines(out.stderr)
    # the first step, then nothing for an hour but the finished run
    assert len(lines) == 2 and "train step 1/40" in lines[0], lines
    assert lines[1] == "serbench: progress: 1/1 runs done, 0 skipped, 0 failed, ETA 0:00:00"
