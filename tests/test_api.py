"""serbench.api: the DataFrames and dicts a notebook gets hold the numbers the CLI prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import serbench.api as sb
from serbench import ConfigError


def serbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "serbench.cli", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def results(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """linear/fbank with the default lr and with lr=0.01 on EmoDB fold 03, run from Python."""
    root = tmp_path_factory.mktemp("api") / "results"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SERBENCH_CACHE", str(root.parent / "cache"))
        for options in ({}, {"lr": 0.01}):
            done = sb.run("linear", "fbank", "emodb", data_root=data_root, folds=["03"],
                          options=options, results=root, budget="smoke", seeds=1)
            assert done[["method", "fold", "status"]].values.tolist() == [["linear", "03", "ok"]]
    return root


def test_runs_has_one_row_per_run_with_the_cli_numbers(results: Path, data_root: Path) -> None:
    frame = sb.runs(results)
    assert len(frame) == 2
    assert sorted(frame["option.lr"]) == [0.001, 0.01]
    assert set(frame["budget.max_steps"]) == {40} and set(frame["usage.steps"]) == {40}
    assert set(frame["n_test"]) == {49}
    cli = serbench("run", "--method", "linear", "--upstream", "fbank", "--dataset", "emodb",
                   "--data-root", str(data_root), "--folds", "03", "--results", str(results),
                   "--budget", "smoke", "--seeds", "1", "--json")
    [line] = [json.loads(x) for x in cli.stdout.splitlines()]
    assert line["status"] == "skipped"
    row = frame.set_index("run_id").loc[line["run_id"]]
    assert {k: row[k] for k in ("uar", "war", "macro_f1")} == line["metrics"]


def test_leaderboard_frame_is_the_cli_json_table(results: Path) -> None:
    frame = sb.leaderboard(results, dataset="emodb")
    cli = serbench("leaderboard", "--dataset", "emodb", "--format", "json", "--results",
                   str(results))
    assert cli.returncode == 0, cli.stderr
    expected = pd.DataFrame(json.loads(cli.stdout))
    assert set(frame["condition"]) == {"linear/fbank", "linear[lr=0.01]/fbank"}
    assert frame["rank"].tolist() == [1, 2]
    pd.testing.assert_frame_equal(frame, expected)


def test_compare_is_the_cli_json(results: Path) -> None:
    got = sb.compare("linear/fbank", "linear/fbank[lr=0.01]", results=results)
    cli = serbench("compare", "linear/fbank", "linear/fbank[lr=0.01]", "--json", "--results",
                   str(results))
    assert cli.returncode == 0, cli.stderr
    assert json.loads(json.dumps(got)) == json.loads(cli.stdout)
    assert got["verdict"]


def test_a_missing_results_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="results folder .*nowhere does not exist"):
        sb.runs(tmp_path / "nowhere")
