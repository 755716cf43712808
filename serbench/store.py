"""The results store: one write-once folder per run, indexed by SQLite.

``runs/<run_id>/run.json`` and ``predictions.jsonl`` are written into a temporary folder and renamed
into place, so a crash never leaves half a run. ``serbench.db`` is only an index: it can be rebuilt
from the folders at any time (``serbench results rebuild-index``). Every read and ``ensure``
reconcile it with the folders first: a run a crashed writer left unindexed is indexed, a damaged
or older index is rebuilt, and a results folder that cannot be written is indexed in memory, so
reading never needs write access. See ``docs/results.md``.

Crash tests set ``SERBENCH_FAULT`` to ``store-before-rename`` or ``store-before-index``: the
process then SIGKILLs itself at that point of ``write``, as a power cut would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from serbench.store_io import (  # noqa: F401 - test_set_hash: re-exported
    StoreError,
    checksum,
    fault,
    finite_json,
    fsync_dir,
    index_values,
    remove_dead_temporaries,
    test_set_hash,
    write_file,
)

SCHEMA = 2  # 2: run ids and records carry the data fingerprint (``data_hash``)
INDEX_VERSION = 2  # PRAGMA user_version of serbench.db; another value is rebuilt
LEFTOVER_SECONDS = 3600.0  # a temporary run folder this old belongs to a dead writer
FULL_DISK_BYTES = 1 << 20  # below this much free space an index write failure is a full disk
INDEX_COLUMNS = (
    "run_id", "status", "upstream", "method", "dataset", "protocol", "fold", "seed", "budget",
    "budget_signature", "options", "dataset_options", "uar", "war", "macro_f1", "test_hash",
    "data_hash", "schema", "created",
)
_INSERT = (f"INSERT OR REPLACE INTO runs ({', '.join(INDEX_COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in INDEX_COLUMNS)})")


def default_results() -> str:
    """The results folder when none is named: ``$SERBENCH_RESULTS``, else ``serbench-results``."""
    return os.environ.get("SERBENCH_RESULTS") or "serbench-results"


class Store:
    """A results folder. Safe for several processes writing at once."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"
        self.db_path = self.root / "serbench.db"

    # ----------------------------------------------------------------------------------- writing

    def ensure(self) -> None:
        """Make the folder ready for writing: writable, its index sound and reconciled."""
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-", delete=True)
            probe.close()
        except OSError as exc:
            raise StoreError(f"results folder {self.root} is not writable ({exc.strerror}); "
                             "choose another with --results") from None
        now = time.time()
        for path in self.runs_dir.iterdir():
            if path.name.startswith((".tmp-", ".old-")):  # a writer killed mid-write
                with contextlib.suppress(OSError):
                    if now - path.stat().st_mtime > LEFTOVER_SECONDS:
                        shutil.rmtree(path, ignore_errors=True)
        self.reconcile()

    def reconcile(self) -> None:
        """Bring the index in line with the run folders now (see :meth:`_index_db`)."""
        self._index_db().db.close()

    def _free_bytes(self) -> int | None:
        try:
            return shutil.disk_usage(self.root).free
        except OSError:
            return None

    def _index_failure(self, exc: sqlite3.Error) -> str:
        """Why the index cannot be written, and what to do: a full disk only when it is full."""
        if "locked" in str(exc):
            return f"{exc}: another serbench holds it; try again when it is done"
        free = self._free_bytes()
        full = "full" in str(exc) or (free is not None and free < FULL_DISK_BYTES)
        if full:
            room = f"{free // 1024} KiB free on its disk" if free is not None else "disk full"
            return f"{exc} ({room}); free some space"
        return (f"{exc}; the index is damaged: run `serbench results rebuild-index --results "
                f"{self.root}`")

    def has(self, run_id: str, status: str = "ok") -> bool:
        """Whether the run is stored with ``status``. Run folders only appear complete (renamed
        into place), so an unreadable ``run.json`` was damaged afterwards: that is an error, never
        a reason to overwrite it."""
        if not (self.runs_dir / run_id / "run.json").is_file():
            return False
        return self.read_record(run_id).get("status") == status

    def write(
        self, record: Mapping[str, Any], predictions: Sequence[Mapping[str, Any]] = ()
    ) -> Path:
        """Write a run atomically. A finished (``ok``) run is never replaced; a failed one is.

        The store stamps the record with the schema it writes (``SCHEMA``); NaN or infinite
        numbers are refused before anything is written, naming the field.
        """
        run_id = record["run_id"]
        final = self.runs_dir / run_id
        if self.has(run_id, "ok"):
            return final
        body = {**record, "schema": SCHEMA, "checksum": checksum(predictions)}
        lines = "".join(finite_json(p, f"run {run_id}: predictions.jsonl", sort_keys=True) + "\n"
                        for p in predictions)
        text = finite_json(body, f"run {run_id}: run.json", indent=2, sort_keys=True, default=str)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{run_id}-", dir=self.runs_dir))
        try:
            write_file(tmp / "predictions.jsonl", lines)
            write_file(tmp / "run.json", text)
            fault("store-before-rename")
            if final.exists():  # a failed attempt: move it aside, then swap in the new one
                old = self.runs_dir / f".old-{run_id}-{os.getpid()}-{time.time_ns()}"
                os.rename(final, old)
                os.rename(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                try:
                    os.rename(tmp, final)
                except OSError:  # another process finished the same run first: keep theirs
                    shutil.rmtree(tmp, ignore_errors=True)
                    return final
            fsync_dir(self.runs_dir)
            fault("store-before-index")
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StoreError(f"could not store run {run_id} in {self.root}: {exc.strerror or exc}; "
                             "nothing stored was changed") from None
        try:
            self._index_new(run_id)
        except StoreError as exc:
            raise StoreError(f"run {run_id} is stored whole in {self.runs_dir}, but {exc}: the "
                             "next serbench run indexes it") from None
        return final

    def _index_new(self, run_id: str) -> None:
        """Index the run just stored, and only it: a sweep of R runs then costs O(R), not O(R²)
        reads of run folders. Folders a crash left unindexed are found by the next read or
        ``ensure`` (every one reconciles); a missing, older or damaged index is reconciled here.
        """
        if self.db_path.is_file() and self._writable():
            try:
                with self._connect() as db:
                    db.execute("BEGIN IMMEDIATE")
                    if db.execute("PRAGMA user_version").fetchone()[0] == INDEX_VERSION:
                        self._fill(db, [run_id])
                        db.execute("COMMIT")
                        return
                    db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # reconciling names the failure (full, locked) or rebuilds a damaged index
        self.reconcile()

    def rebuild_index(self) -> int:
        """Re-create ``serbench.db`` from the run folders; returns the number of runs indexed.

        A run folder that cannot be indexed is named on stderr and left out; the others are
        indexed. Temporary files of rebuilds that were killed are removed first.
        """
        if self.db_path.is_dir():
            raise StoreError(f"{self.db_path} is a folder, not the results index: move it away "
                             "and serbench rebuilds the index from the run folders")
        remove_dead_temporaries(self.root)
        tmp = self.root / f".serbench.db.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        try:
            db = sqlite3.connect(tmp)
            try:
                self._create(db)
                n = self._fill(db, self._folders())
                db.commit()
            finally:
                db.close()
            os.replace(tmp, self.db_path)
        except (OSError, sqlite3.Error) as exc:
            why = self._index_failure(exc) if isinstance(exc, sqlite3.Error) else exc
            raise StoreError(f"cannot write the results index {self.db_path}: {why}") from None
        finally:
            for leftover in self.root.glob(f"{tmp.name}*"):
                leftover.unlink(missing_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(str(self.db_path) + suffix).unlink(missing_ok=True)
        return n

    def _fill(self, db: sqlite3.Connection, run_ids: Iterable[str]) -> int:
        """Index these run folders; one that cannot be read is named and skipped, one of
        another results schema is refused (nothing is indexed)."""
        n = 0
        for run_id in run_ids:
            try:
                record = self.read_record(run_id)
            except StoreError as exc:
                print(f"serbench: warning: run folder {self.runs_dir / run_id} is not indexed: "
                      f"{exc}", file=sys.stderr)
                continue
            check_schema(self.root, [(run_id, record.get("schema"))])
            try:
                db.execute(_INSERT, index_values(record))
                n += 1
            except sqlite3.Error as exc:
                print(f"serbench: warning: run folder {self.runs_dir / run_id} is not indexed: "
                      f"{exc}", file=sys.stderr)
        return n

    def migrate(self) -> int:
        """Bring run records of older schemas to ``SCHEMA``; returns how many were rewritten.

        Schema 1 runs lack the data fingerprint: they get ``data_hash: null`` (paired by test
        set only) and ``migrated_from`` 1. Their run ids stay, so re-running a command plans
        them again under the new ids. Each ``run.json`` is replaced atomically.
        """
        n = 0
        for run_id in self._folders():
            record = self.read_record(run_id)
            old = record.get("schema")
            if old == SCHEMA:
                continue
            if isinstance(old, int) and old > SCHEMA:
                check_schema(self.root, [(run_id, old)])
            record.update(schema=SCHEMA, data_hash=record.get("data_hash"), migrated_from=old)
            path = self.runs_dir / run_id / "run.json"
            tmp = path.with_name(f".run.json.{os.getpid()}.tmp")
            write_file(tmp, finite_json(record, f"run {run_id}: run.json", indent=2,
                                         sort_keys=True, default=str))
            os.replace(tmp, path)
            n += 1
        self.rebuild_index()
        return n

    # ----------------------------------------------------------------------------------- reading

    def _folders(self) -> list[str]:
        """Names of the complete run folders (temporary ones start with a dot)."""
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.name for p in self.runs_dir.iterdir()
                      if not p.name.startswith(".") and (p / "run.json").is_file())

    def iter_records(self) -> Iterator[dict[str, Any]]:
        """Every complete run folder, in a stable order (temporary folders are skipped)."""
        for run_id in self._folders():
            yield self.read_record(run_id)

    def read_record(self, run_id: str) -> dict[str, Any]:
        path = self.runs_dir / run_id / "run.json"
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StoreError(f"run {run_id} not found in {self.root}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            line = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
            raise StoreError(f"{path} is not valid JSON{line}: the run record was "
                             "tampered with or damaged; delete its folder and run again") from None
        if not isinstance(record, dict) or record.get("run_id") != run_id:
            raise StoreError(f"{path} does not describe run {run_id}: the record was tampered "
                             "with; delete its folder and run again")
        return record

    def read_predictions(self, run_id: str, verify: bool = True) -> list[dict[str, Any]]:
        path = self.runs_dir / run_id / "predictions.jsonl"
        try:
            lines = path.read_bytes().split(b"\n")
        except FileNotFoundError:
            raise StoreError(f"run {run_id} has no predictions.jsonl in {self.root}") from None
        preds = []
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                pred = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                problem = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
                raise StoreError(f"{path}:{lineno}: not a JSON object ({problem}): the "
                                 "predictions were damaged; delete the run folder and run "
                                 "again") from None
            if not isinstance(pred, dict):
                raise StoreError(f"{path}:{lineno}: not a JSON object: the predictions were "
                                 "damaged; delete the run folder and run again")
            preds.append(pred)
        if verify:
            record = self.read_record(run_id)
            if record.get("checksum") and record["checksum"] != checksum(preds):
                raise StoreError(f"{path} does not match the checksum in run.json: the "
                                 "predictions were tampered with; delete the run and run again")
        return preds

    def query(self, **where: Any) -> list[dict[str, Any]]:
        """Index rows matching ``column=value`` filters (``None`` values are ignored).

        The index is reconciled with the run folders first (see :meth:`_index_db`).
        """
        if not self.runs_dir.is_dir():
            return []
        clauses = [(k, v) for k, v in where.items() if v is not None]
        for k, _ in clauses:
            if k not in INDEX_COLUMNS:
                raise ValueError(f"unknown index column {k!r}")
        sql = "SELECT * FROM runs"
        if clauses:
            sql += " WHERE " + " AND ".join(f"{k} = ?" for k, _ in clauses)
        sql += " ORDER BY dataset, upstream, method, fold, seed"
        with self._index_db() as db:
            db.row_factory = sqlite3.Row
            rows = [dict(r) for r in db.execute(sql, [v for _, v in clauses])]
        for r in rows:
            r["options"] = json.loads(r["options"] or "{}")
            r["dataset_options"] = json.loads(r["dataset_options"] or "{}")
        return rows

    # ----------------------------------------------------------------------------------- sqlite

    def _writable(self) -> bool:
        return os.access(self.root, os.W_OK) and (
            not self.db_path.exists() or os.access(self.db_path, os.W_OK))

    def _index_db(self) -> _Closing:
        """A connection to an index that lists exactly the complete run folders.

        A missing, older or damaged ``serbench.db`` is rebuilt; runs stored but not indexed (a
        writer killed between the two steps) are indexed and rows of deleted folders dropped. A
        folder that cannot be written is indexed in memory instead: reading needs no write
        access.
        """
        folders = self._folders()
        if not self._writable():
            db = sqlite3.connect(":memory:", isolation_level=None)
            self._create(db)
            self._fill(db, folders)
            return _Closing(db)
        if self.db_path.is_dir():
            raise StoreError(f"{self.db_path} is a folder, not the results index: move it away "
                             "and serbench rebuilds the index from the run folders")
        try:
            return self._reconciled(folders)
        except sqlite3.OperationalError as exc:  # full, locked, unopenable: not damage
            raise self._unwritable(exc) from None
        except sqlite3.DatabaseError as exc:  # not a database, malformed
            print(f"serbench: warning: the results index {self.db_path} is damaged ({exc}); "
                  "rebuilding it from the run folders", file=sys.stderr)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(self.db_path) + suffix).unlink(missing_ok=True)
        try:
            return self._reconciled(folders)
        except sqlite3.Error as exc:
            raise self._unwritable(exc) from None

    def _unwritable(self, exc: sqlite3.Error) -> StoreError:
        return StoreError(f"cannot write the results index {self.db_path}: "
                          f"{self._index_failure(exc)} or choose another folder with --results")

    def _reconciled(self, folders: list[str]) -> _Closing:
        conn = self._connect()
        db = conn.db
        try:
            db.execute("BEGIN IMMEDIATE")
            if db.execute("PRAGMA user_version").fetchone()[0] != INDEX_VERSION:
                db.execute("DROP TABLE IF EXISTS runs")  # new, or written by an older serbench
                self._create(db)
            indexed = {row[0] for row in db.execute("SELECT run_id FROM runs")}
            self._fill(db, [f for f in folders if f not in indexed])
            gone = indexed - set(folders)
            db.executemany("DELETE FROM runs WHERE run_id = ?", [(g,) for g in gone])
            db.execute("COMMIT")
        except BaseException:
            conn.__exit__()
            raise
        return conn

    def _connect(self) -> _Closing:
        db = sqlite3.connect(self.db_path, timeout=60.0, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout = 60000")
            with contextlib.suppress(sqlite3.OperationalError):
                db.execute("PRAGMA journal_mode = WAL")  # network filesystems keep the default
        except sqlite3.Error:
            db.close()
            raise
        return _Closing(db)

    @staticmethod
    def _create(db: sqlite3.Connection) -> None:
        cols = ", ".join(f"{c} {'PRIMARY KEY' if c == 'run_id' else ''}" for c in INDEX_COLUMNS)
        db.execute(f"CREATE TABLE IF NOT EXISTS runs ({cols})")
        db.execute("CREATE INDEX IF NOT EXISTS runs_condition ON runs "
                   "(dataset, budget_signature, upstream, method)")
        db.execute(f"PRAGMA user_version = {INDEX_VERSION}")


class _Closing:
    """A connection used as a context manager that also closes (sqlite3's only commits)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, *exc: Any) -> None:
        self.db.close()


def check_schema(root: Path, rows: Iterable[tuple[str, Any]]) -> None:
    """Refuse runs written under another results schema, naming one of them."""
    for run_id, schema in rows:
        if schema == SCHEMA:
            continue
        if isinstance(schema, int) and schema > SCHEMA:
            raise StoreError(f"run {run_id} in {root} was written by a newer serbench (results "
                             f"schema {schema}; this one reads schema {SCHEMA}): upgrade serbench "
                             "or choose another folder with --results")
        raise StoreError(f"{root} holds runs of an older serbench (run {run_id}: results schema "
                         f"{schema}, now {SCHEMA}): migrate them with `serbench results migrate "
                         f"--results {root}` (or re-run into a new --results folder)")


