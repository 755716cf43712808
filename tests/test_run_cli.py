"""The first end-to-end run on real EmoDB, through the command line a user types."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scale_helpers import apart_budget

from serbench.store import Store

TWO_FOLDS = ["--folds", "03", "16"]


def serbench(*args: str, env: dict[str, str] | None = None, timeout: float = 600):
    return subprocess.run([sys.executable, "-m", "serbench.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def run_args(data_root: Path, results: Path, *extra: str) -> list[str]:
    return ["run", "--method", "linear", "--upstream", "fbank", "--dataset", "emodb",
            "--data-root", str(data_root), "--budget", "smoke", "--seeds", "1",
            "--results", str(results), *extra]


def snapshot(results: Path) -> dict[str, bytes]:
    """Every file of every stored run (a ``.tmp-`` folder a killed writer left is not a run)."""
    return {str(p.relative_to(results)): p.read_bytes()
            for p in sorted((results / "runs").rglob("*"))
            if p.is_file() and not p.relative_to(results / "runs").parts[0].startswith(".")}


def test_linear_on_fbank_runs_stores_skips_and_ranks(data_root: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    out = serbench(*run_args(data_root, results, "--json", *TWO_FOLDS))
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["fold"], r["seed"], r["status"]) for r in lines] == [("03", 0, "ok"),
                                                                     ("16", 0, "ok")]
    for r in lines:
        assert set(r) >= {"run_id", "status", "upstream", "method", "dataset", "fold", "seed",
                          "budget", "metrics"}
        assert set(r["metrics"]) == {"uar", "war", "macro_f1"}
        record = json.loads((results / "runs" / r["run_id"] / "run.json").read_text())
        assert record["n_test"] == {"03": 49, "16": 71}[r["fold"]]  # files per test speaker
        assert record["usage"]["steps"] <= 40 and record["usage"]["audio_seconds"] > 0
        assert record["environment"]["device"] == "cpu"
        preds = (results / "runs" / r["run_id"] / "predictions.jsonl").read_text().splitlines()
        assert len(preds) == record["n_test"]
    # the pooled UAR over both folds is above chance (1/7)
    assert sum(r["metrics"]["uar"] for r in lines) / 2 > 1 / 7

    before = snapshot(results)
    again = serbench(*run_args(data_root, results, "--json", *TWO_FOLDS))
    assert again.returncode == 0
    assert [json.loads(line)["status"] for line in again.stdout.splitlines()] == ["skipped"] * 2
    assert snapshot(results) == before  # nothing new, nothing rewritten

    board = serbench("leaderboard", "--results", str(results), "--format", "json")
    assert board.returncode == 0, board.stderr
    rows = json.loads(board.stdout)
    rows = rows if isinstance(rows, list) else [r for t in rows.values() for r in t]
    row = next(r for r in rows if r["method"] == "linear" and r["upstream"] == "fbank")
    assert row["runs"] == 2 and row["dataset"] == "emodb" and row["budget"] == "smoke"


def test_dry_run_plans_folds_times_seeds_without_running(data_root: Path, tmp_path: Path) -> None:
    out = serbench(*run_args(data_root, tmp_path / "r", "--dry-run", "--json", "--seeds", "2"))
    assert out.returncode == 0, out.stderr
    plan = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(plan) == 20 and {p["status"] for p in plan} == {"to run"}
    assert sorted({p["fold"] for p in plan}) == ["03", "08", "09", "10", "11", "12", "13", "14",
                                                 "15", "16"]
    assert not (tmp_path / "r" / "runs").exists()


def test_a_killed_sweep_resumes_and_keeps_finished_runs(data_root: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    apart = apart_budget(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "serbench.cli",
                             *run_args(data_root, results, "--quiet", *apart)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    runs = results / "runs"
    deadline = time.time() + 300
    while time.time() < deadline:
        done = [p for p in runs.glob("*/run.json")] if runs.exists() else []
        if len(done) >= 2 or proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = snapshot(results)
    n_before = len({k.split("/")[1] for k in finished})
    assert 2 <= n_before < 10, "the sweep should have been killed midway"

    out = serbench(*run_args(data_root, results, "--json", *apart))
    assert out.returncode == 0, out.stderr
    statuses = [json.loads(line)["status"] for line in out.stdout.splitlines()]
    assert statuses.count("skipped") == n_before and statuses.count("ok") == 10 - n_before
    after = snapshot(results)
    assert {k: v for k, v in after.items() if k in finished} == finished
    assert len([p for p in runs.iterdir() if not p.name.startswith(".")]) == 10
    assert Store(results).rebuild_index() == 10


def test_unknown_method_is_one_line_with_a_suggestion(data_root: Path, tmp_path: Path) -> None:
    out = serbench("run", "--method", "linera", "--upstream", "fbank", "--dataset", "emodb",
                   "--data-root", str(data_root), "--results", str(tmp_path / "r"))
    assert out.returncode == 2
    assert out.stderr == "serbench: error: unknown method 'linera': did you mean 'linear'?\n"


def test_unknown_option_is_rejected_before_compute(data_root: Path, tmp_path: Path) -> None:
    out = serbench(*run_args(data_root, tmp_path / "r", "--option", "normalise=speaker"))
    assert out.returncode == 2
    assert out.stderr.strip() == ("serbench: error: method 'linear' has no option 'normalise'; "
                                  "did you mean 'normalize'?")
    assert not (tmp_path / "r" / "runs").exists()


@pytest.fixture()
def emodb_with_corrupt_wav(emodb_root: Path, tmp_path: Path) -> Path:
    """A copy of EmoDB (symlinked audio) in which one wav is cut in the middle of its data."""
    root = tmp_path / "corpus" / "emodb"
    (root / "wav").mkdir(parents=True)
    for wav in sorted((emodb_root / "wav").glob("*.wav")):
        (root / "wav" / wav.name).symlink_to(wav)
    bad = root / "wav" / "03a01Fa.wav"
    data = (emodb_root / "wav" / "03a01Fa.wav").read_bytes()
    bad.unlink()
    bad.write_bytes(data[: len(data) // 2])
    return root


def test_a_corrupt_wav_is_one_clear_line_and_stores_nothing(emodb_with_corrupt_wav: Path,
                                                             tmp_path: Path) -> None:
    results = tmp_path / "results"
    out = serbench(*run_args(emodb_with_corrupt_wav, results, *TWO_FOLDS))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("serbench: error: ")
    assert "03a01Fa.wav" in lines[0] and "Traceback" not in out.stderr
    assert not any((results / "runs").glob("*/run.json")) if (results / "runs").exists() else True

    skipped = serbench(*run_args(emodb_with_corrupt_wav, results, "--json", "--skip-bad-audio",
                                 "--folds", "03"))
    assert skipped.returncode == 0, skipped.stderr
    assert "03a01Fa.wav" in skipped.stderr  # the warning names the file
    run_id = json.loads(skipped.stdout.splitlines()[0])["run_id"]
    record = json.loads((results / "runs" / run_id / "run.json").read_text())
    assert [s["path"].endswith("03a01Fa.wav") for s in record["skipped_audio"]] == [True]
    assert record["n_test"] == 48
