"""The same run twice on CPU gives the same predictions, and the run says what it ran on."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest
import torch
from scale_helpers import SWEEP, complete_runs, serbench, warm_cache

import serbench as package


@pytest.mark.usefixtures(warm_cache.__name__)
def test_same_run_twice_gives_identical_predictions(data_root: Path, tmp_path: Path) -> None:
    args = ["run", *SWEEP, "--data-root", str(data_root), "--folds", "2", "--quiet"]
    first, second = tmp_path / "first", tmp_path / "second"
    for results in (first, second):  # two processes, two stores: nothing is reused
        done = serbench(*args, "--results", str(results))
        assert done.returncode == 0, done.stderr
    [run_id] = complete_runs(first)
    assert complete_runs(second) == [run_id]
    a, b = (r / "runs" / run_id for r in (first, second))
    assert (a / "predictions.jsonl").read_bytes() == (b / "predictions.jsonl").read_bytes()

    rec, again = (json.loads((d / "run.json").read_text()) for d in (a, b))
    for key in ("metrics", "usage", "checksum", "test_hash", "labels", "seeds"):
        if key == "usage":  # wall-clock measurements differ; what was trained does not
            for k in ("steps", "audio_seconds", "best_step", "best_dev_uar", "evaluations"):
                assert rec[key][k] == again[key][k]
        else:
            assert rec[key] == again[key]
    # fold index 2 of EmoDB's LOSO tests speaker 09: 43 utterances
    assert rec["spec"]["fold"] == "09" and rec["n_test"] == 43
    assert rec["spec"]["seed"] == 0
    assert rec["seeds"] == {"python": 0, "numpy": 0, "torch": 0,
                            "deterministic_algorithms": True,
                            "torch_threads": torch.get_num_threads()}
    env = rec["environment"]
    assert env["device"] == "cpu"
    assert env["torch"] == torch.__version__
    assert env["python"] == platform.python_version()
    assert env["serbench"] == package.__version__
    assert set(env["plugins"]) >= {"baselines", "datasets", "upstreams"}
    assert rec["upstream_revision"] is not None


@pytest.mark.usefixtures(warm_cache.__name__)
def test_another_seed_is_another_run(data_root: Path, tmp_path: Path) -> None:
    from serbench.registry import collect
    from serbench.run.planning import make_plan

    plan = make_plan(collect(), methods=["linear"], upstreams=["fbank"], dataset="emodb",
                     data_root=data_root, seeds=2, folds=["2"])
    ids = [r.run_id for r in plan.runs]
    assert [r.spec.seed for r in plan.runs] == [0, 1] and len(set(ids)) == 2
    again = make_plan(collect(), methods=["linear"], upstreams=["fbank"], dataset="emodb",
                      data_root=data_root, seeds=2, folds=["2"])
    assert [r.run_id for r in again.runs] == ids  # the id is a pure function of the spec
