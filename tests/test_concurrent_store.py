"""Four processes writing 50 runs each into one results folder at the same moment."""

from __future__ import annotations

import multiprocessing
import sqlite3
import traceback
from pathlib import Path

from serbench.store import Store

WRITERS, RUNS_EACH = 4, 50


def _record(writer: int, i: int) -> tuple[dict, list[dict]]:
    run_id = f"w{writer}r{i:03d}".ljust(16, "0")
    predictions = [{"key": f"{writer}-{i}-{k}", "speaker": f"s{k % 3}", "label": "angry",
                    "prediction": "sad" if k % 2 else "angry", "scores": [0.25 * k, 0.5]}
                   for k in range(20)]
    record = {
        "schema": 2, "run_id": run_id, "status": "ok", "error": None,
        "spec": {"upstream": "fbank", "method": f"method{writer}", "dataset": "emodb",
                 "protocol": "loso", "fold": f"{i:02d}", "seed": 0, "budget": "smoke",
                 "options": {}, "dataset_options": {}},
        "budget": {"name": "smoke", "signature": "ccb2000f23f8"},
        "metrics": {"uar": i / 100, "war": i / 200, "macro_f1": i / 300},
        "test_hash": f"{writer:016d}", "created": "2026-11-22T02:00:00Z",
    }
    return record, predictions


def _writer(root: str, writer: int, start: multiprocessing.synchronize.Barrier,
            errors: multiprocessing.Queue) -> None:
    store = Store(root)
    try:
        start.wait(timeout=60)
        store.ensure()  # as every sweep does first: creates the index, concurrently
        for i in range(RUNS_EACH):
            store.write(*_record(writer, i))
            store.query(method=f"method{writer}")  # readers interleave with the writers
    except BaseException:
        errors.put(f"writer {writer}: {traceback.format_exc()}")
        raise


def test_four_processes_write_fifty_runs_each_into_one_store(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    start, errors = ctx.Barrier(WRITERS), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, start, errors))
             for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert not failures, "\n".join(failures)  # in particular no "database is locked"
    assert [p.exitcode for p in procs] == [0] * WRITERS

    store = Store(tmp_path)
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(folders) == WRITERS * RUNS_EACH
    assert not [f for f in folders if f.startswith(".")]  # no temporary folder left behind
    rows = store.query()
    assert len(rows) == WRITERS * RUNS_EACH
    assert sorted(r["run_id"] for r in rows) == folders
    for w in range(WRITERS):
        mine = store.query(method=f"method{w}")
        assert len(mine) == RUNS_EACH
        assert sorted(r["uar"] for r in mine) == [i / 100 for i in range(RUNS_EACH)]
    # every folder is whole: its predictions match the checksum written with it
    for run_id in folders[::17]:
        assert len(store.read_predictions(run_id)) == 20
    with sqlite3.connect(tmp_path / "serbench.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    # the index is exactly what the folders say
    indexed = {r["run_id"]: (r["status"], r["uar"], r["test_hash"]) for r in rows}
    assert store.rebuild_index() == WRITERS * RUNS_EACH
    assert {r["run_id"]: (r["status"], r["uar"], r["test_hash"]) for r in store.query()} == indexed
