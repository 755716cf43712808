"""Faults of a results folder and of what reads it: damaged or missing index rows, damaged derived
caches and predictions, runs of other schemas, hostile names, out-of-range numbers.

Every test reads a real results folder (simulated runs written through ``Store.write``) with the
real CLI; each fault is one a crash, a full disk, a tampering hand or a newer serbench leaves.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from serbench.cli import main
from serbench.run.simulate import make_corpus, simulate_predictions, write_condition
from serbench.store import SCHEMA, Store, StoreError


def _results(tmp_path: Path, *conditions: tuple[str, str, dict[str, str]]) -> Store:
    """A results folder with each (method, upstream, options) run on 4 LOSO folds × 1 seed."""
    rng = np.random.default_rng(7)
    corpus = make_corpus(rng, n_speakers=4, per_speaker=12)
    store = Store(tmp_path / "results")
    for method, upstream, options in conditions or (("linear", "fbank", {}),
                                                    ("mlp", "fbank", {})):
        write_condition(store, corpus, simulate_predictions(corpus, 0.8, 1, rng), method,
                        upstream, options=options)
    return store


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _board(capsys: pytest.CaptureFixture[str], store: Store, *extra: str) -> tuple[int, str, str]:
    return _cli(capsys, "leaderboard", "--results", str(store.root), "--n-boot", "200", *extra)


def _sql(store: Store, statement: str) -> None:
    """Change the index as another process would: it commits and closes (no -wal, -shm left)."""
    with contextlib.closing(sqlite3.connect(store.db_path)) as db, db:
        db.execute(statement)
    assert not Path(f"{store.db_path}-shm").exists()


def _one_line(code: int, err: str) -> str:
    assert code == 2 and err.count("\n") == 1 and err.startswith("serbench: error: "), err
    return err


# ---------------------------------------------------------------------------------- the index


@pytest.mark.parametrize("damage", ["garbage", "empty"])
def test_a_damaged_index_is_rebuilt_from_the_run_folders(
        damage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _results(tmp_path)
    code, before, _ = _board(capsys, store)
    assert code == 0
    for suffix in ("-wal", "-shm"):
        Path(f"{store.db_path}{suffix}").unlink(missing_ok=True)
    store.db_path.write_bytes(b"not a database, " * 512 if damage == "garbage" else b"")
    code, out, err = _board(capsys, store)
    assert (code, out) == (0, before)
    if damage == "garbage":
        assert err == (f"serbench: warning: the results index {store.db_path} is damaged (file "
                       "is not a database); rebuilding it from the run folders\n")
    assert len(Store(store.root).query()) == 8


def test_an_index_that_is_a_folder_is_one_line_that_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _results(tmp_path)
    store.db_path.unlink()
    store.db_path.mkdir()
    err = _one_line(*_board(capsys, store)[::2])
    assert err == (f"serbench: error: {store.db_path} is a folder, not the results index: move "
                   "it away and serbench rebuilds the index from the run folders\n")


def test_runs_stored_but_not_indexed_are_read(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A writer killed between the rename and the index, or one holding the lock."""
    store = _results(tmp_path)
    _sql(store, "DELETE FROM runs WHERE method = 'mlp' OR fold = '0'")
    code, out, _ = _board(capsys, store, "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert {(r["condition"], r["runs"]) for r in rows} == {("linear/fbank", 4), ("mlp/fbank", 4)}


def test_the_index_never_holds_an_integer_sqlite_cannot(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A run with a seed past 2^63 (from an older serbench or by hand) is indexed as text;
    the others are not blocked and nothing is left behind."""
    rng = np.random.default_rng(1)
    corpus = make_corpus(rng, n_speakers=4, per_speaker=12)
    store = Store(tmp_path / "results")
    write_condition(store, corpus, simulate_predictions(corpus, 0.8, 1, rng), "linear", "fbank")
    write_condition(store, corpus, simulate_predictions(corpus, 0.8, 1, rng), "mlp", "fbank",
                    seeds=[2**64])
    assert sorted({str(r["seed"]) for r in store.query()}) == ["0", str(2**64)]
    assert _cli(capsys, "results", "rebuild-index", "--results", str(store.root))[0] == 0
    assert len(store.query()) == 8
    assert sorted(p.name for p in store.root.iterdir()) == ["runs", "serbench.db"]


def test_an_unreadable_run_folder_is_named_and_blocks_no_other_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _results(tmp_path)
    code, before, _ = _board(capsys, store)
    bad = store.runs_dir / ("d" * 16)
    bad.mkdir()
    (bad / "run.json").write_text('{"run_id": ')
    warning = (f"serbench: warning: run folder {bad} is not indexed: {bad / 'run.json'} is not "
               "valid JSON (line 1): the run record was tampered with or damaged; delete its "
               "folder and run again\n")
    assert _board(capsys, store) == (0, before, warning)
    assert _cli(capsys, "results", "rebuild-index", "--results", str(store.root)) == (
        0, f"indexed 8 runs in {store.db_path}\n", warning)


def test_storing_a_run_indexes_it_alone_and_the_next_read_finds_what_a_crash_left(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _results(tmp_path)  # 8 runs
    bad = store.runs_dir / ("d" * 16)  # a damaged folder: named by reads, not by every write
    bad.mkdir()
    (bad / "run.json").write_text('{"run_id": ')
    crashed = store.runs_dir / ("c" * 16)  # a run a writer stored but was killed before indexing
    crashed.mkdir()
    record = store.read_record(store.query()[0]["run_id"])
    (crashed / "run.json").write_text(json.dumps({**record, "run_id": crashed.name}))
    (crashed / "predictions.jsonl").write_bytes(
        (store.runs_dir / record["run_id"] / "predictions.jsonl").read_bytes())
    capsys.readouterr()
    rng = np.random.default_rng(3)
    corpus = make_corpus(rng, n_speakers=4, per_speaker=12)
    write_condition(store, corpus, simulate_predictions(corpus, 0.8, 2, rng), "mlp", "egemaps")
    assert capsys.readouterr().err == ""  # 8 runs stored, nothing else read
    with contextlib.closing(sqlite3.connect(store.db_path)) as db:
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone() == (16,)
    rows = store.query()
    assert len(rows) == 17 and crashed.name in {r["run_id"] for r in rows}
    assert capsys.readouterr().err.count(f"run folder {bad} is not indexed") == 1


def test_rebuilds_killed_before_leave_no_temporary_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _results(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)  # a process that has exited, as a SIGKILLed rebuild has
    for suffix in (".tmp", ".tmp-journal"):
        (store.root / f".serbench.db.{pid}{suffix}").write_bytes(b"half a database")
    code, out, _ = _cli(capsys, "results", "rebuild-index", "--results", str(store.root))
    assert (code, out) == (0, f"indexed 8 runs in {store.db_path}\n")
    assert sorted(p.name for p in store.root.iterdir()) == ["runs", "serbench.db"]


def test_a_read_only_results_folder_can_be_read(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a read-only folder")
    store = _results(tmp_path)
    code, before, _ = _board(capsys, store)
    point = tmp_path / "ro"
    point.mkdir()
    subprocess.run(["mount", "--bind", str(store.root), str(point)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(point)], check=True)
        # a run folder that was never indexed, read without write access
        _sql(store, "DELETE FROM runs WHERE fold = '1'")
        code, out, _ = _board(capsys, Store(point))
        assert (code, out) == (0, before)
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


# ---------------------------------------------------------------------------------- run files


def test_a_damaged_prediction_cache_is_rebuilt(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    store = _results(tmp_path)
    code, before, _ = _board(capsys, store)
    caches = sorted((store.root / ".cache" / "predictions").glob("*.npz"))
    assert code == 0 and len(caches) == 8
    caches[0].write_bytes(b"PK\x03\x04 half a zip")
    caches[1].write_bytes(caches[1].read_bytes()[:100])
    code, out, _ = _board(capsys, store)
    assert (code, out) == (0, before)
    assert np.load(caches[0])["y_true"].size == 12  # rebuilt


def test_damaged_predictions_name_the_file_and_line(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    store = _results(tmp_path)
    run = store.query(method="linear", fold="2")[0]["run_id"]
    path = store.runs_dir / run / "predictions.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:40]
    path.write_text("\n".join(lines) + "\n")
    err = _one_line(*_board(capsys, store)[::2])
    assert err.startswith(f"serbench: error: {path}:3: not a JSON object (")


def test_non_finite_numbers_are_never_written(tmp_path: Path) -> None:
    store = _results(tmp_path)
    record = store.read_record(store.query()[0]["run_id"])
    record.update(run_id="f" * 16, status="ok")
    record["metrics"]["uar"] = float("nan")
    with pytest.raises(StoreError) as err:
        store.write(record, store.read_predictions(store.query()[0]["run_id"]))
    assert str(err.value).startswith(f"run {'f' * 16}: run.json: metrics.uar (nan) is not a "
                                     "finite number")
    assert not (store.runs_dir / ("f" * 16)).exists()
    assert not [p for p in store.runs_dir.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------------------- schemas


def _restamp(store: Store, schema: int, index_version: int) -> str:
    """Make the folder look written by another serbench: every run and the index."""
    for run in store.runs_dir.iterdir():
        record = json.loads((run / "run.json").read_text())
        record["schema"] = schema
        (run / "run.json").write_text(json.dumps(record))
    _sql(store, f"PRAGMA user_version = {index_version}")
    return sorted(p.name for p in store.runs_dir.iterdir())[0]


def test_a_newer_schema_is_refused_by_name(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    store = _results(tmp_path)
    first = _restamp(store, SCHEMA + 1, 99)
    err = _one_line(*_board(capsys, store)[::2])
    assert err == (f"serbench: error: run {first} in {store.root} was written by a newer serbench "
                   f"(results schema {SCHEMA + 1}; this one reads schema {SCHEMA}): upgrade "
                   "serbench or choose another folder with --results\n")


def test_an_older_schema_is_refused_with_how_to_migrate_and_then_migrated(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _results(tmp_path)
    code, before, _ = _board(capsys, store)
    first = _restamp(store, 1, 0)
    err = _one_line(*_board(capsys, store)[::2])
    assert err == (f"serbench: error: {store.root} holds runs of an older serbench (run {first}: "
                   f"results schema 1, now {SCHEMA}): migrate them with `serbench results "
                   f"migrate --results {store.root}` (or re-run into a new --results folder)\n")
    code, out, _ = _cli(capsys, "results", "migrate", "--results", str(store.root))
    assert (code, out) == (0, f"migrated 8 runs in {store.root} to results schema {SCHEMA}\n")
    assert _board(capsys, store)[:2] == (0, before)
    record = store.read_record(first)
    assert (record["schema"], record["migrated_from"], record["data_hash"]) == (SCHEMA, 1, None)


# ---------------------------------------------------------------------------------- names


def test_a_condition_with_a_comma_in_an_option_can_be_named_back(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _results(tmp_path, ("gmp_tl", "fbank", {"k_values": "50,100"}),
                     ("gmp_tl", "fbank", {}))
    code, out, _ = _board(capsys, store, "--format", "json")
    names = sorted(r["condition"] for r in json.loads(out))
    assert names == ['gmp_tl/fbank', 'gmp_tl[k_values="50,100"]/fbank']
    code, out, err = _cli(capsys, "compare", names[1], names[0], "--results", str(store.root),
                          "--n-boot", "200", "--json")
    assert code == 0, err
    assert json.loads(out)["a"]["condition"] == names[1]
    code, out, err = _board(capsys, store, "--baseline", names[1])
    assert code == 0, err


def test_an_upstream_with_slashes_is_quoted_and_can_be_named_back(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _results(tmp_path, ("linear", "hf:/models/wavlm", {}), ("mlp", "hf:/models/wavlm", {}))
    code, out, _ = _board(capsys, store, "--format", "json")
    names = sorted(r["condition"] for r in json.loads(out))
    assert names == ['linear/"hf:/models/wavlm"', 'mlp/"hf:/models/wavlm"']
    code, out, err = _cli(capsys, "compare", *names, "--results", str(store.root), "--n-boot",
                          "200", "--json")
    assert code == 0, err
    assert json.loads(out)["b"]["condition"] == names[1]


HOSTILE = '=HYPERLINK("http://x")|<img src=x onerror=alert(1)>'


def test_csv_cannot_carry_a_formula_and_markdown_cannot_carry_html(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _results(tmp_path, (HOSTILE, "fbank", {}), ("-linear", "fbank", {"lr": "-1e-3"}))
    code, out, _ = _board(capsys, store, "--format", "csv")
    assert code == 0
    cells = [c for row in csv.reader(io.StringIO(out)) for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "@")]
    assert f"'{HOSTILE}/fbank" in cells and "'-linear" in cells
    code, out, _ = _board(capsys, store)
    table = [line for line in out.splitlines() if line.startswith("|")]
    widths = {line.replace("\\|", "").count("|") for line in table}
    assert len(widths) == 1  # every row has the header's columns
    assert "<img" not in out and "&lt;img src=x onerror=alert(1)&gt;" in out
