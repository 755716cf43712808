"""``--workers N``: runs spread over local processes, same results as one process, one store."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from scale_helpers import complete_runs, digest_tree, serbench, warm_cache

from serbench.run.executors import LocalExecutor, make_executor
from serbench.run.ray_executor import RayExecutor, task_resources
from serbench.specs import Budget, ConfigError


def _records(results: Path) -> dict[str, dict]:
    return {rid: json.loads((results / "runs" / rid / "run.json").read_text())
            for rid in complete_runs(results)}


def _scores(results: Path, rid: str) -> list[list[float]]:
    lines = (results / "runs" / rid / "predictions.jsonl").read_text().splitlines()
    return [json.loads(line)["scores"] for line in lines]


@pytest.mark.usefixtures(warm_cache.__name__)
def test_two_workers_store_the_same_runs_as_one_process(data_root: Path, tmp_path: Path) -> None:
    # a suite of two plans (two conditions), each on two folds: one pool runs all four
    suite = tmp_path / "suite.yaml"
    suite.write_text("dataset: emodb\nbudget: smoke\nfolds: [0, 1]\nentries:\n"
                     "  - {methods: linear, upstreams: fbank}\n"
                     "  - {methods: linear, upstreams: fbank, options: {lr: 0.01}}\n")
    args = ["--suite", str(suite), "--device", "cpu", "--data-root", str(data_root)]
    serial, pool = tmp_path / "serial", tmp_path / "pool"
    one = serbench("run", *args, "--results", str(serial), "--quiet")
    assert one.returncode == 0, one.stderr
    two = serbench("run", *args, "--results", str(pool), "--workers", "2")
    assert two.returncode == 0, two.stderr

    # 2 conditions x 2 folds, each stored once, by two different worker processes
    assert complete_runs(pool) == complete_runs(serial) and len(complete_runs(pool)) == 4
    workers = set(re.findall(r"started on (\S+) \(cpu\)", two.stderr))
    assert len(workers) == 2, two.stderr
    assert len(re.findall(r"step 40: dev UAR", two.stderr)) == 4
    assert len(two.stdout.splitlines()) == 4 and "FAILED" not in two.stdout

    a, b = _records(serial), _records(pool)
    for rid in a:
        assert b[rid]["metrics"]["uar"] == a[rid]["metrics"]["uar"]
        assert b[rid]["spec"] == a[rid]["spec"]
        assert b[rid]["usage"]["steps"] == a[rid]["usage"]["steps"] == 40
        # one worker uses 1 intra-op thread, one process 2: sums may differ in the last digit
        assert b[rid]["seeds"]["torch_threads"] == 1
        for x, y in zip(_scores(serial, rid), _scores(pool, rid), strict=True):
            assert x == pytest.approx(y, abs=1e-5)
    with sqlite3.connect(pool / "serbench.db") as db:
        rows = db.execute("SELECT run_id, status FROM runs ORDER BY run_id").fetchall()
    assert rows == [(rid, "ok") for rid in sorted(a)]

    # the same command again runs nothing and changes nothing
    before = digest_tree(pool / "runs")
    again = serbench("run", *args, "--results", str(pool), "--workers", "2")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("(already stored)") == 4
    assert "started on" not in again.stderr
    assert digest_tree(pool / "runs") == before


@pytest.mark.parametrize(("name", "workers", "address", "message"), [
    ("local", 0, None, "--workers must be at least 1, got 0"),
    ("dask", 1, None, "unknown executor 'dask': use local or ray"),
    ("local", 1, "10.0.0.1:6379", "--address is the Ray cluster address: use it with --executor "
                                  "ray"),
    ("ray", 2, None, "--workers is for the local executor; Ray places runs itself"),
])
def test_bad_executor_choices_are_one_line_errors(name: str, workers: int, address: str | None,
                                                  message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        make_executor(name, workers, address)


def test_executor_kinds() -> None:
    assert isinstance(make_executor(), LocalExecutor)
    assert make_executor("local", 3).workers == 3
    assert isinstance(make_executor("ray", 1, "127.0.0.1:6379"), RayExecutor)


def test_ray_tasks_ask_for_what_the_budget_declares() -> None:
    cpu = Budget("b", 10, 10.0, 10.0, device="cpu", cpus=2, memory_gb=1.5)
    assert task_resources(cpu, None, {"CPU": 4}) == {"num_cpus": 2, "num_gpus": 0,
                                                     "memory": 3 * 2**29}
    auto = Budget("b", 10, 10.0, 10.0)
    assert task_resources(auto, None, {"CPU": 4}) == {"num_cpus": 1, "num_gpus": 0}
    assert task_resources(auto, None, {"CPU": 4, "GPU": 2}) == {"num_cpus": 1, "num_gpus": 1}
    assert task_resources(auto, "cpu", {"CPU": 4, "GPU": 2})["num_gpus"] == 0
    cuda = Budget("big", 10, 10.0, 10.0, device="cuda")
    assert task_resources(cuda, None, {"CPU": 4, "GPU": 1})["num_gpus"] == 1
    with pytest.raises(ConfigError, match="budget 'big' asks for device 'cuda', but the Ray "
                                          "cluster has no GPU"):
        task_resources(cuda, None, {"CPU": 4})
    with pytest.raises(ConfigError, match=r"budget 'b': cpus must be a positive integer, got 0"):
        task_resources(Budget("b", 10, 10.0, 10.0, cpus=0), None, {"CPU": 4})
    with pytest.raises(ConfigError, match=r"budget 'b' asks for 8 CPUs per run, but the Ray "
                                          r"cluster has 4 in all; lower cpus in the budget"):
        task_resources(Budget("b", 10, 10.0, 10.0, cpus=8), None, {"CPU": 4})


def test_workers_find_the_cache_filled_by_the_driver(data_root: Path, tmp_path: Path) -> None:
    # a cold cache: the driver fills the fbank entry once (its progress bar: workers run
    # quietly), then the two workers read it
    env = {"SERBENCH_CACHE": str(tmp_path / "cache")}
    two = serbench("run", "--method", "linear", "--upstream", "fbank", "--dataset", "emodb",
                   "--data-root", str(data_root), "--budget", "smoke", "--folds", "0",
                   "--seeds", "2", "--device", "cpu", "--results", str(tmp_path / "r"),
                   "--workers", "2", env=env)
    assert two.returncode == 0, two.stderr
    assert two.stderr.count("features fbank on emodb") >= 1
    assert len(set(re.findall(r"started on (\S+) \(cpu\)", two.stderr))) == 2
    entries = list((tmp_path / "cache" / "features" / "fbank").glob("emodb-*/meta.json"))
    assert len(entries) == 1
    assert len(complete_runs(tmp_path / "r")) == 2
