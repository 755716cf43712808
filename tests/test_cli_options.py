"""One option style for every command: name flags repeat or take comma lists; --option values are
never split; compare never prints a negative zero."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def dry_run(data_root: Path, *args: str) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "serbench.cli", "run", "--dataset", "emodb",
                          "--data-root", str(data_root), "--dry-run", "--json", "--seeds", "1",
                          *args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def cells(rows: list[dict]) -> list[tuple[str, str, str]]:
    return [(r["method"], r["upstream"], r["fold"]) for r in rows]


def test_name_flags_repeat_or_take_comma_lists(data_root: Path) -> None:
    commas = dry_run(data_root, "--method", "linear,mlp", "--upstream", "fbank",
                     "--folds", "03,16")
    repeated = dry_run(data_root, "--method", "linear", "--method", "mlp", "--upstream", "fbank",
                       "--folds", "03", "--folds", "16")
    assert cells(commas) == cells(repeated) == [
        ("linear", "fbank", "03"), ("linear", "fbank", "16"),
        ("mlp", "fbank", "03"), ("mlp", "fbank", "16")]


def test_option_values_keep_their_commas(data_root: Path) -> None:
    rows = dry_run(data_root, "--method", "gmp_tl", "--upstream", "fbank", "--folds", "03",
                   "--option", "k_values=20,40", "--option", "finetune_upstream=false")
    assert [r["options"] for r in rows] == [{"k_values": "20,40", "finetune_upstream": False}]


def test_a_tiny_negative_difference_prints_as_zero() -> None:
    from serbench.judge.text import delta_text

    assert [delta_text(d) for d in (-0.0004, -0.0, 0.0004, -0.012)] == [
        "+0.0", "+0.0", "+0.0", "-1.2"]
