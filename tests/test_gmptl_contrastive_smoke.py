"""Smoke runs of gmp_tl and contrastive_reg (with its α = 0 baseline) on one real EmoDB fold,
through ``serbench run``, and the leaderboard showing them beside the linear probe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serbench.cli import main


@pytest.mark.slow
def test_smoke_runs_appear_on_the_leaderboard_beside_the_probe(
        tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("tiny:\n  base: smoke\n  max_steps: 20\n  max_device_seconds: 300\n"
                       "  eval_every: 10\n")
    results = tmp_path / "results"
    common = ["--dataset", "emodb", "--data-root", str(data_root), "--folds", "0", "--seeds", "1",
              "--budgets", str(budgets), "--budget", "tiny", "--results", str(results), "--quiet"]
    assert main(["run", "--method", "linear", "--upstream", "fbank", *common]) == 0
    assert main(["run", "--method", "gmp_tl", "--upstream", "fbank", "--option",
                 "finetune_upstream=false", *common]) == 0
    assert main(["run", "--method", "contrastive_reg", "--upstream", "fbank", "--option",
                 "text_encoder=minilm", "--with-baseline", *common]) == 0
    capsys.readouterr()
    assert main(["leaderboard", "--results", str(results), "--dataset", "emodb", "--format",
                 "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["condition"] for r in rows) == [
        "contrastive_reg/fbank", "contrastive_reg[alpha=0.0]/fbank",
        "gmp_tl[finetune_upstream=false]/fbank", "linear/fbank"]
    assert {(r["budget"], r["runs"], r["folds"]) for r in rows} == {("tiny", 1, 1)}
    assert all(0.0 <= r["uar"] <= 1.0 for r in rows)

    records = [json.loads(p.read_text()) for p in results.glob("runs/*/run.json")]
    gmp = next(r for r in records if r["spec"]["method"] == "gmp_tl")
    assert gmp["status"] == "ok" and gmp["n_test"] == 49  # speaker 03's files
    assert {k: gmp["options"][k] for k in ("k_values", "cluster_layer", "gender_weight",
                                           "am_scale", "am_margin")} == {
        "k_values": "50,100,200", "cluster_layer": "middle", "gender_weight": 0.5,
        "am_scale": 30.0, "am_margin": 0.2}
    stages = gmp["usage"]["stages"]
    # the k-means fits are in the record: a sample of every training speaker and file; Lloyd
    # runs until it converges or the cluster stage's 15 s are spent (then its one step is not)
    kmeans = gmp["method_info"]["kmeans"]
    cluster_steps = 0 if kmeans["stopped_by"] == "max_device_seconds" else 1
    assert kmeans["stopped_by"] in ("converged", "max_device_seconds")
    assert [(s["name"], s["max_steps"], s["steps"]) for s in stages] == [
        ("multitask", 6, 6), ("cluster", 1, cluster_steps), ("frames", 6, 6), ("utterance", 7, 7)]
    assert sum(s["device_seconds"] for s in stages) <= 300.0
    assert kmeans["speakers"] == kmeans["speakers_seen"] == 8
    assert kmeans["utterances_seen"] == gmp["n_train"]
    assert kmeans["frames"] == min(50000, kmeans["frames_seen"])
    assert [s["k"] for s in kmeans["scales"]] == [50, 100, 200]
    assert all(s["iterations"] >= 1 and s["inertia"] > 0 for s in kmeans["scales"])
    pair = sorted((r for r in records if r["spec"]["method"] == "contrastive_reg"),
                  key=lambda r: r["options"]["alpha"])
    assert [r["options"]["alpha"] for r in pair] == [0.0, 0.3]
    assert pair[0]["test_hash"] == pair[1]["test_hash"]  # the paired test can compare them
