"""``torchrun --nproc_per_node 2 -m serbench run ...``: DDP on CPU (gloo) equals one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from scale_helpers import REPO, SWEEP, complete_runs, serbench, warm_cache

from serbench.run.distributed import env_world, shard
from serbench.specs import Batch


def _torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "serbench", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _record(results: Path) -> tuple[dict, list[dict]]:
    [rid] = complete_runs(results)
    folder = results / "runs" / rid
    preds = [json.loads(x) for x in (folder / "predictions.jsonl").read_text().splitlines()]
    return json.loads((folder / "run.json").read_text()), preds


@pytest.mark.usefixtures(warm_cache.__name__)
def test_two_ranks_train_the_same_model_as_one_process(data_root: Path, tmp_path: Path) -> None:
    args = ["run", *SWEEP, "--data-root", str(data_root), "--folds", "0"]
    single = serbench(*args, "--results", str(tmp_path / "single"), "--quiet")
    assert single.returncode == 0, single.stderr
    ddp = _torchrun(*args, "--results", str(tmp_path / "ddp"))
    assert ddp.returncode == 0, ddp.stderr

    # one run stored, once, and only rank 0 printed its outcome
    assert complete_runs(tmp_path / "ddp") == complete_runs(tmp_path / "single")
    assert len(ddp.stdout.splitlines()) == 1 and "linear/fbank emodb fold 03" in ddp.stdout
    one, one_preds = _record(tmp_path / "single")
    two, two_preds = _record(tmp_path / "ddp")
    assert two["environment"]["world_size"] == 2 and "world_size" not in one["environment"]
    # the budget counts global batches: the same 40 steps over the same audio
    assert two["usage"]["steps"] == one["usage"]["steps"] == 40
    assert two["usage"]["audio_seconds"] == one["usage"]["audio_seconds"]
    assert two["usage"]["best_step"] == one["usage"]["best_step"]
    # sharded gradients averaged over ranks are the global batch's gradient
    assert two["metrics"]["uar"] == pytest.approx(one["metrics"]["uar"], abs=1e-9)
    assert [p["prediction"] for p in two_preds] == [p["prediction"] for p in one_preds]
    for a, b in zip(one_preds, two_preds, strict=True):
        assert a["key"] == b["key"] and a["scores"] == pytest.approx(b["scores"], abs=1e-4)


@pytest.mark.usefixtures(warm_cache.__name__)
def test_every_rank_stops_together_at_the_device_seconds_limit(
        data_root: Path, tmp_path: Path) -> None:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("timed:\n  base: smoke\n  max_steps: 1000000\n  max_device_seconds: 1.5\n"
                       "  eval_every: 1000000\n")
    ddp = _torchrun("run", *SWEEP[:-4], "--budget", "timed", "--budgets", str(budgets),
                    "--device", "cpu", "--data-root", str(data_root), "--folds", "0",
                    "--results", str(tmp_path / "r"), "--quiet")
    # a rank stopping alone would leave the other waiting in an all-reduce until the timeout
    assert ddp.returncode == 0, ddp.stderr
    record, _ = _record(tmp_path / "r")
    usage = record["usage"]
    assert usage["stopped_by"] == "max_device_seconds"
    # the sum over both ranks, building and predicting included, stays within the limit: no
    # timer interrupts a rank under DDP, so the loop stops before a step that would overrun
    # (measured 1.30 s; 0.1 s of slack for a step slowed down by other jobs on a shared CPU)
    assert usage["device_seconds"] <= 1.5 + 0.1
    assert usage["build_seconds"] > 0 and usage["predict_seconds"] > 0
    assert usage["steps"] > 0 and usage["stages"][0]["steps"] == usage["steps"]


def test_each_rank_takes_its_share_and_the_weights_rebuild_the_global_mean() -> None:
    torch.manual_seed(0)
    feats = [torch.randn(5, 3, 4), torch.randn(5, 3, 4)]
    batch = Batch(keys=list("abcde"), labels=torch.tensor([0, 1, 2, 0, 1]),
                  lengths=torch.tensor([3, 2, 3, 1, 3]), speakers=list("xxyyz"),
                  features=feats, genders=torch.tensor([0, 1, 0, 1, 0]),
                  texts=["t1", "t2", "t3", "t4", "t5"], audio_seconds=10.0)
    first, w0 = shard(batch, 0, 2)
    second, w1 = shard(batch, 1, 2)
    assert (first.keys, second.keys) == (["a", "b"], ["c", "d", "e"])
    assert (w0, w1) == (0.8, 1.2)  # 2 * 2 / 5 and 3 * 2 / 5
    assert second.labels.tolist() == [2, 0, 1] and second.speakers == ["y", "y", "z"]
    assert second.texts == ["t3", "t4", "t5"] and second.genders.tolist() == [0, 1, 0]
    assert torch.equal(second.features[1], feats[1][2:]) and len(second.features) == 2
    assert first.audio_seconds + second.audio_seconds == pytest.approx(10.0)

    # a per-item loss: the mean of the weighted shard means equals the global mean
    w = torch.randn(4, requires_grad=True)

    def mean_loss(b: Batch) -> torch.Tensor:
        return (b.features[0].sum(1) @ w).square().mean()

    ddp_avg = (mean_loss(first) * w0 + mean_loss(second) * w1) / 2
    assert ddp_avg.item() == pytest.approx(mean_loss(batch).item(), rel=1e-6)

    # a batch smaller than the world: the empty rank joins with weight 0
    one = Batch(keys=["a"], labels=torch.tensor([1]), lengths=torch.tensor([1]), speakers=["x"])
    (empty, w0), (full, w1) = shard(one, 0, 2), shard(one, 1, 2)
    assert (empty.keys, w0) == (["a"], 0.0) and (full.keys, w1) == (["a"], 2.0)


def test_torchrun_environment_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert env_world() is None
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert env_world() is None  # one process: no process group
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert env_world() == (3, 4, 1)


def test_a_shard_of_a_stacked_batch_keeps_its_layers_as_views_of_the_stack() -> None:
    x = torch.randn(4, 3, 1, 5)  # (B, L, T, D), as the cached feed builds it
    batch = Batch(keys=list("abcd"), labels=torch.arange(4),
                  lengths=torch.ones(4, dtype=torch.long), speakers=list("abcd"), stacked=x)
    part, weight = shard(batch, rank=1, size=2)
    assert part.keys == ["c", "d"] and weight == 1.0
    assert torch.equal(part.stacked, x[2:])
    for layer, f in enumerate(part.features):
        assert torch.equal(f, x[2:, layer])
        assert f.untyped_storage().data_ptr() == part.stacked.untyped_storage().data_ptr()
