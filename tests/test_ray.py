"""``--executor ray --address ADDR``: runs as Ray tasks on a local Ray instance this test starts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from scale_helpers import SWEEP, complete_runs, digest_tree, serbench, warm_cache  # noqa: F401

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'serbench[ray]')")


@pytest.fixture
def cluster(warm_cache: Path) -> str:  # noqa: F811 - the fixture, started after the cache is set
    """A 2-CPU local Ray instance; its workers inherit this test's cache and results folders."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_runs_go_to_ray_tasks_with_their_budget_resources(cluster: str, data_root: Path,
                                                          tmp_path: Path) -> None:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("wide:\n  base: smoke\n  cpus: 2\n  memory_gb: 0.25\n")
    results = tmp_path / "results"
    args = ["run", *SWEEP[:-4], "--budget", "wide", "--budgets", str(budgets), "--device", "cpu",
            "--data-root", str(data_root), "--folds", "0", "1", "--results", str(results)]
    done = serbench(*args, "--executor", "ray", "--address", cluster)
    assert done.returncode == 0, done.stderr

    # the driver stored both runs and printed one line each
    runs = complete_runs(results)
    assert len(runs) == 2 and len(done.stdout.splitlines()) == 2
    assert "FAILED" not in done.stdout
    # progress streamed back from the tasks: start, then each dev evaluation
    events = re.findall(r"serbench: run (\w+): (started on \S+ \(cpu\)|step \d+: dev UAR)",
                        done.stderr)
    assert sorted({rid for rid, _ in events}) == runs
    assert [e for _, e in events].count("step 40: dev UAR") == 2
    # each task asked for 2 CPUs of a 2-CPU cluster: the second starts after the first ends
    order = [rid for rid, e in events if e.startswith("started")]
    first_done = [i for i, (rid, e) in enumerate(events) if rid == order[0] and "40" in e][0]
    second_start = [i for i, (rid, e) in enumerate(events) if rid == order[1]][0]
    assert second_start > first_done, done.stderr
    for rid in runs:
        record = json.loads((results / "runs" / rid / "run.json").read_text())
        assert record["status"] == "ok" and record["budget"]["cpus"] == 2
        assert record["usage"]["steps"] == 40

    # the same sweep with the local executor finds them: the same run ids, the same store
    before = digest_tree(results)
    again = serbench(*args, "--quiet")
    assert again.returncode == 0, again.stderr
    assert digest_tree(results / "runs") == {k[5:]: v for k, v in before.items()
                                             if k.startswith("runs/")}
