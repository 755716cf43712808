"""The seeds and folds of a condition on frozen features train as one group, and each run is
what it would be alone: the same predictions, its own steps, stored as its own run."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from scale_helpers import SWEEP, complete_runs, serbench, warm_cache

from serbench.registry import collect
from serbench.run.attempt import attempt, finished
from serbench.run.grouped import units
from serbench.run.inprocess import run_plan
from serbench.run.planning import make_plan
from serbench.specs import Budget
from serbench.store import Store

CPU = torch.device("cpu")


def _plan(data_root: Path, method: str = "linear", budget: Any = "smoke", build: Any = None,
          **kw: Any) -> Any:
    plan = make_plan(collect(), methods=[method], upstreams=["fbank"], dataset="emodb",
                     data_root=data_root, budget=budget, seeds=2, folds=["0", "1"], **kw)
    if build is not None:  # one method object shared by the plan's runs, as planning makes it
        cell = plan.runs[0].condition
        cell.method = replace(cell.method, build=build)
    return plan


def _alone(plan: Any) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each run trained by itself, through the one-run path."""
    out = {}
    for run in plan.runs:
        record, predictions = attempt(plan, run, CPU)
        out[run.run_id] = (record.to_json(), predictions)
    return out


def _same_run(grouped: dict[str, Any], predictions: list[dict[str, Any]],
              alone: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    record, expected = alone
    assert grouped["metrics"] == record["metrics"]
    for key in ("steps", "audio_seconds", "best_step", "best_dev_uar", "evaluations",
                "stopped_by"):
        assert grouped["usage"][key] == record["usage"][key], key
    assert [p["key"] for p in predictions] == [p["key"] for p in expected]
    for got, want in zip(predictions, expected, strict=True):
        assert got["scores"] == pytest.approx(want["scores"], abs=1e-6)


class DropoutProbe(torch.nn.Module):
    """The linear probe with dropout on its inputs: it draws random numbers at every step."""

    def __init__(self, ctx: Any) -> None:
        from serbench_baselines.probes import LinearProbe

        super().__init__()
        self.probe = LinearProbe(ctx)
        self.drop = torch.nn.Dropout(0.3)

    def loss(self, batch: Any) -> torch.Tensor:
        batch.stacked = self.drop(batch.stacked)
        return self.probe.loss(batch)

    def predict(self, batch: Any) -> torch.Tensor:
        return self.probe.predict(batch)


@pytest.mark.usefixtures(warm_cache.__name__)
@pytest.mark.parametrize("build", [None, DropoutProbe], ids=["linear", "dropout"])
def test_a_group_gives_each_run_what_it_gives_alone(data_root: Path, tmp_path: Path,
                                                     build: Any) -> None:
    plan = _plan(data_root, build=build)
    alone = _alone(plan)
    store = Store(tmp_path / "results")
    store.ensure()
    # a sweep killed after its first run: the others form the group
    first = plan.runs[0]
    finished(plan, first, alone[first.run_id][0], alone[first.run_id][1], store)
    assert [len(u) for u in units([(plan, r) for r in plan.runs[1:]])] == [3]

    outcomes = run_plan(plan, store, device="cpu", quiet=True)

    assert [o["status"] for o in outcomes] == ["skipped", "ok", "ok", "ok"]
    assert [o["run_id"] for o in outcomes] == [r.run_id for r in plan.runs]
    shares, groups = [], []
    for run in plan.runs[1:]:
        record = store.read_record(run.run_id)
        _same_run(record, store.read_predictions(run.run_id), alone[run.run_id])
        usage = record["usage"]
        assert usage["steps"] == 40 and usage["stages"][0]["steps"] == 40
        assert usage["device_seconds"] < plan.budget.max_device_seconds
        shares.append(usage["stages"][0]["device_seconds"])
        groups.append(usage["group"])
    # the group's seconds (its steps and dev evaluations) are shared out among its runs
    assert groups[0]["runs"] == 3 and groups[0]["share"] == "equal" and groups == groups[:1] * 3
    assert sum(shares) == pytest.approx(groups[0]["train_seconds"], abs=0.004)
    assert "group" not in store.read_record(first.run_id)["usage"]


@pytest.mark.usefixtures(warm_cache.__name__)
def test_a_budget_whose_device_seconds_could_bind_keeps_runs_apart(data_root: Path,
                                                                    tmp_path: Path) -> None:
    smoke = _plan(data_root)
    assert [len(u) for u in units([(smoke, r) for r in smoke.runs])] == [4]
    assert [len(u) for u in units([(smoke, r) for r in smoke.runs], workers=2)] == [2, 2]
    # 40 steps at the estimator's 0.02 s a step: 0.8 s, which 1.5 s could not hold twice over
    tight = _plan(data_root, budget=Budget("tight", max_steps=40, batch_seconds=60.0,
                                           max_device_seconds=1.5, eval_every=20))
    assert [len(u) for u in units([(tight, r) for r in tight.runs])] == [1, 1, 1, 1]
    store = Store(tmp_path / "results")
    assert [o["status"] for o in run_plan(tight, store, device="cpu", quiet=True)] == ["ok"] * 4
    assert all("group" not in store.read_record(r.run_id)["usage"] for r in tight.runs)


class FailsForSeedOne(DropoutProbe):
    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.seed, self.calls = ctx.seed, 0

    def loss(self, batch: Any) -> torch.Tensor:
        self.calls += 1
        loss = super().loss(batch)
        return loss * float("nan") if self.seed == 1 and self.calls >= 5 else loss


@pytest.mark.usefixtures(warm_cache.__name__)
def test_a_run_that_fails_in_a_group_fails_alone(data_root: Path, tmp_path: Path) -> None:
    plan = _plan(data_root, build=FailsForSeedOne)
    alone = _alone(plan)
    store = Store(tmp_path / "results")
    outcomes = run_plan(plan, store, device="cpu", quiet=True)
    assert [(o["seed"], o["status"]) for o in outcomes] == [(0, "ok"), (1, "failed")] * 2
    for run, out in zip(plan.runs, outcomes, strict=True):
        if run.spec.seed == 1:
            assert out["error"] == alone[run.run_id][0]["error"] == (
                "the loss became nan at step 5 (stage train); lower lr")
        else:  # the others trained on, unchanged
            _same_run(store.read_record(run.run_id), store.read_predictions(run.run_id),
                      alone[run.run_id])
            assert store.read_record(run.run_id)["usage"]["group"]["runs"] == 4


@pytest.mark.usefixtures(warm_cache.__name__)
def test_a_model_with_its_own_optimiser_trains_alone(data_root: Path, tmp_path: Path) -> None:
    # logreg solves by L-BFGS (configure_optimizer, begin_stage): the group gives way
    plan = _plan(data_root, method="logreg", options={"c_values": "0.1"})
    assert [len(u) for u in units([(plan, r) for r in plan.runs])] == [4]
    alone = _alone(plan)
    store = Store(tmp_path / "results")
    assert [o["status"] for o in run_plan(plan, store, device="cpu", quiet=True)] == ["ok"] * 4
    for run in plan.runs:
        record = store.read_record(run.run_id)
        assert "group" not in record["usage"]
        _same_run(record, store.read_predictions(run.run_id), alone[run.run_id])


@pytest.mark.usefixtures(warm_cache.__name__)
def test_two_workers_train_a_group_each_and_store_every_run(data_root: Path,
                                                             tmp_path: Path) -> None:
    args = ["run", *SWEEP, "--data-root", str(data_root), "--folds", "0", "1", "--seeds", "2"]
    one = serbench(*args, "--results", str(tmp_path / "one"), "--quiet")
    two = serbench(*args, "--results", str(tmp_path / "two"), "--workers", "2")
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    assert len(set(re.findall(r"started on (\S+) \(cpu\)", two.stderr))) == 2
    assert len(re.findall(r"step 40: dev UAR", two.stderr)) == 4
    runs = complete_runs(tmp_path / "one")
    assert complete_runs(tmp_path / "two") == runs and len(runs) == 4
    for rid in runs:
        a, b = (json.loads((tmp_path / d / "runs" / rid / "run.json").read_text())
                for d in ("one", "two"))
        assert a["usage"]["group"]["runs"] == 4 and b["usage"]["group"]["runs"] == 2
        assert b["usage"]["steps"] == a["usage"]["steps"] == 40
        assert b["metrics"]["uar"] == pytest.approx(a["metrics"]["uar"], abs=1e-6)
