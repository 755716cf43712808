"""Every method of the ``baselines`` and ``clap`` plugins, run through ``serbench run`` on real
EmoDB (one fold, a few steps), stored, and listed by ``serbench leaderboard`` in one table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from serbench.cli import main
from serbench.testing import tiny_transformers_model

BUDGET = "tiny:\n  base: smoke\n  max_steps: 6\n  batch_seconds: 20\n  eval_every: 3\n"
CLAP = ["--option", "text_encoder=minilm", "--option", "finetune_upstream=false"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict]:
    code = main(["run", *argv, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return [json.loads(line) for line in out.out.splitlines()]


@pytest.mark.slow
def test_every_method_runs_on_emodb_and_one_leaderboard_lists_them(
        tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "budgets.yaml").write_text(BUDGET)
    tiny = tiny_transformers_model("wavlm", tmp_path / "tiny-wavlm")
    common = ["--dataset", "emodb", "--data-root", str(data_root), "--folds", "03",
              "--seeds", "1", "--budgets", str(tmp_path / "budgets.yaml"), "--budget", "tiny",
              "--results", str(tmp_path / "results")]
    outcomes = _run(capsys, "--method", "linear", "--method", "mlp", "--upstream", "fbank",
                    *common)
    outcomes += _run(capsys, "--method", "emo_clap", "--method", "ml_gemo", "--method",
                     "sl_gemo", "--upstream", "fbank", *CLAP, *common)
    outcomes += _run(capsys, "--method", "finetune", "--upstream", f"hf:{tiny}", *common)
    assert [(o["method"], o["status"]) for o in outcomes] == [
        (m, "ok") for m in ("linear", "mlp", "emo_clap", "ml_gemo", "sl_gemo", "finetune")]
    for o in outcomes:
        record = json.loads(
            (tmp_path / "results" / "runs" / o["run_id"] / "run.json").read_text())
        # speaker 03 is the test set: 49 files; the budget's 6 steps were all taken
        assert (record["n_test"], record["usage"]["steps"]) == (49, 6)
        assert 0.0 <= o["metrics"]["uar"] <= 1.0

    assert main(["leaderboard", "--results", str(tmp_path / "results"), "--dataset", "emodb",
                 "--format", "json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert {row["budget"] for row in table} == {"tiny"}
    # the signature says whether the upstream was frozen: the fine-tuned run's differs
    frozen = {row["budget_signature"] for row in table if not row["condition"].startswith("fine")}
    tuned = {row["budget_signature"] for row in table if row["condition"].startswith("fine")}
    assert len(frozen) == 1 and len(tuned) == 1 and frozen != tuned
    assert sorted(row["condition"] for row in table) == sorted([
        "linear/fbank", "mlp/fbank", f'finetune/"hf:{tiny}"',  # a name holding / is quoted
        *(f"{m}[finetune_upstream=false,text_encoder=minilm]/fbank"
          for m in ("emo_clap", "ml_gemo", "sl_gemo")),
    ])


def test_a_gender_method_on_data_without_gender_fails_before_compute(
        tmp_path: Path, emodb_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "speaker"])
        for name, label in [("03a01Wa", "anger"), ("08a01Na", "neutral"), ("09a01Wb", "anger")]:
            writer.writerow([str(emodb_root / "wav" / f"{name}.wav"), label, name[:2]])
    code = main(["run", "--method", "ml_gemo", "--upstream", "fbank", "--dataset", "manifest",
                 "--data-root", str(manifest), *CLAP, "--results", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2
    assert err == ("serbench: error: method 'ml_gemo' on dataset 'manifest': the method needs "
                   "speaker gender, which 3 utterances lack; choose a dataset with gender\n")
    assert not (tmp_path / "results" / "runs").exists()
