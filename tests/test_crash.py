"""SIGKILL a sweep during feature caching, during the store write and during training, restart it.

Every finished run must survive byte for byte, nothing may be stored twice or half, the sweep must
complete, and a half-written feature cache entry must never be read. The kills during caching and
training are real timing-based kills; the two store-write points use ``SERBENCH_FAULT`` (the store
SIGKILLs itself there), since that window lasts microseconds.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Callable

from scale_helpers import SWEEP, apart_budget, complete_runs, digest_tree, serbench, start

from serbench.data.features import open_entry
from serbench.store import Store


def _kill_when(proc: subprocess.Popen[str], ready: Callable[[], bool],
               timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"finished before the kill point: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, "the kill point never came"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _index_rows(results: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(results / "serbench.db") as db:
        return db.execute("SELECT run_id, status FROM runs ORDER BY run_id").fetchall()


def test_a_killed_sweep_resumes_without_losing_or_doubling_runs(data_root: Path,
                                                                tmp_path: Path) -> None:
    results = tmp_path / "results"
    cache = Path(os.environ["SERBENCH_CACHE"]) / "features" / "fbank"
    args = ["run", *SWEEP, *apart_budget(tmp_path), "--data-root", str(data_root), "--folds",
            "0", "1", "--seeds", "2", "--results", str(results), "--quiet"]

    # 1. during feature caching: the entry is being filled in a temporary folder
    def caching() -> bool:
        return any(f.stat().st_size > 0 for f in cache.glob(".tmp-*/mean.f32"))

    _kill_when(start(*args), caching)
    assert list(cache.glob("*/meta.json")) == []  # no entry appears complete
    assert [p.name for p in cache.iterdir() if p.is_dir()][0].startswith(".tmp-emodb-")
    assert complete_runs(results) == []

    # 2. during the store write, before the run folder is renamed into place
    died = serbench(*args, env={"SERBENCH_FAULT": "store-before-rename"})
    assert died.returncode == -signal.SIGKILL, died.stderr
    [entry] = [p.parent for p in cache.glob("*/meta.json")]  # recomputed whole, never the half
    opened = open_entry(entry, None)  # every file's checksum verified
    assert len(opened.keys) == 535
    assert [p.name for p in cache.iterdir() if p.name.startswith(".tmp-")] == []
    assert complete_runs(results) == []
    assert list(Store(results).iter_records()) == []
    [leftover] = (results / "runs").glob(".tmp-*")  # invisible to readers
    assert (leftover / "run.json").is_file()

    # 3. during the store write, after the rename and before the index
    died = serbench(*args, env={"SERBENCH_FAULT": "store-before-index"})
    assert died.returncode == -signal.SIGKILL, died.stderr
    [first] = complete_runs(results)
    assert _index_rows(results) == []

    # 4. during training: killed once a second run is stored, while the third trains
    _kill_when(start(*args), lambda: len(complete_runs(results)) >= 2)
    finished = complete_runs(results)
    assert first in finished and 2 <= len(finished) < 4
    before = {rid: digest_tree(results / "runs" / rid) for rid in finished}

    # 5. the same command finishes what is missing and leaves the rest alone; a writer's
    # leftover older than an hour is removed (a fresh one may belong to a live writer)
    os.utime(leftover, (time.time() - 7200, time.time() - 7200))
    done = serbench(*args[:-1])  # not quiet: one line per run
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(already stored)") == len(finished)
    runs = complete_runs(results)
    assert len(runs) == 4
    assert not leftover.exists()
    for rid in finished:
        assert digest_tree(results / "runs" / rid) == before[rid]
    assert _index_rows(results) == [(rid, "ok") for rid in runs]
    cells = set()
    store = Store(results)
    for rid in runs:
        record = json.loads((results / "runs" / rid / "run.json").read_text())
        cells.add((record["spec"]["fold"], record["spec"]["seed"]))
        assert len(store.read_predictions(rid)) == record["n_test"]  # checksum verified
    assert cells == {("03", 0), ("03", 1), ("08", 0), ("08", 1)}
