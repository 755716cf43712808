"""The tutorial third-party plugin, installed with pip, is listed, validated and run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def serbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "serbench.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_listed_with_its_components() -> None:
    out = serbench("plugins", "--json")
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["example"]["distribution"] == "serbench-example-plugin"
    assert rows["example"]["status"] == "ok"
    assert sorted(rows["example"]["components"]) == ["dataset:mini_emodb", "method:prototype",
                                                     "upstream:example_mfcc"]


def test_validated() -> None:
    out = serbench("validate", "upstream", "example_mfcc")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "FAIL" not in out.stdout


def test_run_on_real_emodb_and_ranked(data_root: Path, tmp_path: Path) -> None:
    results = str(tmp_path / "results")
    out = serbench("run", "--method", "prototype", "--upstream", "example_mfcc", "--dataset",
                   "emodb", "--data-root", str(data_root), "--budget", "smoke", "--folds", "14",
                   "--seeds", "1", "--results", results, "--json")
    assert out.returncode == 0, out.stderr
    (run,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert run["status"] == "ok" and run["method"] == "prototype"
    assert run["metrics"]["uar"] > 1 / 7


def test_its_dataset_runs_end_to_end(data_root: Path, tmp_path: Path) -> None:
    out = serbench("run", "--method", "prototype", "--upstream", "example_mfcc", "--dataset",
                   "mini_emodb", "--data-root", str(data_root), "--budget", "smoke", "--seeds", "1",
                   "--folds", "03", "--results", str(tmp_path / "results"), "--json")
    assert out.returncode == 0, out.stderr
    (run,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert (run["status"], run["dataset"], run["fold"]) == ("ok", "mini_emodb", "03")
    record = json.loads((tmp_path / "results" / "runs" / run["run_id"] / "run.json").read_text())
    assert (record["n_train"], record["n_dev"], record["n_test"]) == (16, 8, 8)
