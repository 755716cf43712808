"""The results store: one write-once folder per run, indexed by SQLite.

``runs/<run_id>/run.json`` and ``predictions.jsonl`` are written into a temporary folder and renamed
into place, so a crash never leaves half a run. ``serbench.db`` is only an index: it can be rebuilt
from the folders at any time (``serbench results rebuild-index``), and ``ensure`` indexes any run
folder a crash left unindexed. See ``docs/results.md``.

Crash tests set ``SERBENCH_FAULT`` to ``store-before-rename`` or ``store-before-index``: the
process then SIGKILLs itself at that point of ``write``, as a power cut would.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from .specs import ConfigError

SCHEMA = 1
LEFTOVER_SECONDS = 3600.0  # a temporary run folder this old belongs to a dead writer
INDEX_COLUMNS = (
    "run_id", "status", "upstream", "method", "dataset", "protocol", "fold", "seed", "budget",
    "budget_signature", "options", "dataset_options", "uar", "war", "macro_f1", "test_hash",
    "created",
)


class StoreError(ConfigError):
    """The results folder cannot be read or written."""


def test_set_hash(keys: Iterable[str]) -> str:
    """Order-free hash of the test utterance keys: paired tests refuse runs whose hashes differ."""
    h = hashlib.sha256()
    for key in sorted(keys):
        h.update(key.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


class Store:
    """A results folder. Safe for several processes writing at once."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"
        self.db_path = self.root / "serbench.db"

    # ----------------------------------------------------------------------------------- writing

    def ensure(self) -> None:
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-", delete=True)
            probe.close()
        except OSError as exc:
            raise StoreError(f"results folder {self.root} is not writable ({exc.strerror}); "
                             "choose another with --results") from None
        try:
            with self._connect() as db:
                self._create(db)
                indexed = {row[0] for row in db.execute("SELECT run_id FROM runs")}
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the results index {self.db_path}: {exc} "
                             f"({self._free()}); free some space or choose another folder with "
                             "--results") from None
        now = time.time()
        for path in sorted(self.runs_dir.iterdir()):
            if path.name.startswith((".tmp-", ".old-")):  # a writer killed mid-write
                with contextlib.suppress(OSError):
                    if now - path.stat().st_mtime > LEFTOVER_SECONDS:
                        shutil.rmtree(path, ignore_errors=True)
            elif path.name not in indexed and not path.name.startswith("."):
                if (path / "run.json").is_file():  # crashed between rename and index
                    self._index(self.read_record(path.name))

    def _free(self) -> str:
        try:
            return f"{shutil.disk_usage(self.root).free // 1024} KiB free on its disk"
        except OSError:
            return "free space unknown"

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
        """Write a run atomically. A finished (``ok``) run is never replaced; a failed one is."""
        run_id = record["run_id"]
        final = self.runs_dir / run_id
        if self.has(run_id, "ok"):
            return final
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{run_id}-", dir=self.runs_dir))
        try:
            body = dict(record)
            body["checksum"] = _checksum(predictions)
            _write_file(tmp / "predictions.jsonl",
                        "".join(json.dumps(p, sort_keys=True) + "\n" for p in predictions))
            _write_file(tmp / "run.json", json.dumps(body, indent=2, sort_keys=True, default=str))
            _fault("store-before-rename")
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
            _fsync_dir(self.runs_dir)
            _fault("store-before-index")
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StoreError(f"could not store run {run_id} in {self.root}: {exc.strerror or exc}; "
                             "nothing stored was changed") from None
        self._index(body)
        return final

    def _index(self, record: Mapping[str, Any]) -> None:
        """Index a run already in place; if that fails, the run is kept and indexed later."""
        row = index_row(record)
        try:
            with self._connect() as db:
                self._create(db)
                db.execute(
                    f"INSERT OR REPLACE INTO runs ({', '.join(INDEX_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in INDEX_COLUMNS)})",
                    [row[c] for c in INDEX_COLUMNS],
                )
        except sqlite3.Error as exc:
            raise StoreError(f"run {record['run_id']} is stored whole in {self.runs_dir}, but the "
                             f"index {self.db_path} cannot be written: {exc} ({self._free()}); "
                             "free some space: the next serbench run indexes it") from None

    def rebuild_index(self) -> int:
        """Re-create ``serbench.db`` from the run folders; returns the number of runs indexed."""
        tmp = self.root / f".serbench.db.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        db = sqlite3.connect(tmp)
        try:
            self._create(db)
            n = 0
            for record in self.iter_records():
                row = index_row(record)
                db.execute(
                    f"INSERT OR REPLACE INTO runs ({', '.join(INDEX_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in INDEX_COLUMNS)})",
                    [row[c] for c in INDEX_COLUMNS],
                )
                n += 1
            db.commit()
        finally:
            db.close()
        os.replace(tmp, self.db_path)
        for suffix in ("-wal", "-shm"):
            Path(str(self.db_path) + suffix).unlink(missing_ok=True)
        return n

    # ----------------------------------------------------------------------------------- reading

    def iter_records(self) -> Iterator[dict[str, Any]]:
        """Every complete run folder, in a stable order (temporary folders are skipped)."""
        if not self.runs_dir.is_dir():
            return
        for path in sorted(self.runs_dir.iterdir()):
            if path.name.startswith(".") or not (path / "run.json").is_file():
                continue
            yield self.read_record(path.name)

    def read_record(self, run_id: str) -> dict[str, Any]:
        path = self.runs_dir / run_id / "run.json"
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            raise StoreError(f"run {run_id} not found in {self.root}") from None
        except json.JSONDecodeError as exc:
            raise StoreError(f"{path} is not valid JSON (line {exc.lineno}): the run record was "
                             "tampered with or damaged; delete its folder and run again") from None
        if not isinstance(record, dict) or record.get("run_id") != run_id:
            raise StoreError(f"{path} does not describe run {run_id}: the record was tampered "
                             "with; delete its folder and run again")
        return record

    def read_predictions(self, run_id: str, verify: bool = True) -> list[dict[str, Any]]:
        path = self.runs_dir / run_id / "predictions.jsonl"
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            raise StoreError(f"run {run_id} has no predictions.jsonl in {self.root}") from None
        preds = [json.loads(line) for line in lines if line.strip()]
        if verify:
            record = self.read_record(run_id)
            if record.get("checksum") and record["checksum"] != _checksum(preds):
                raise StoreError(f"{path} does not match the checksum in run.json: the "
                                 "predictions were tampered with; delete the run and run again")
        return preds

    def query(self, **where: Any) -> list[dict[str, Any]]:
        """Index rows matching ``column=value`` filters (``None`` values are ignored)."""
        if not self.db_path.exists():
            if not self.runs_dir.is_dir():
                return []
            self.rebuild_index()
        clauses = [(k, v) for k, v in where.items() if v is not None]
        for k, _ in clauses:
            if k not in INDEX_COLUMNS:
                raise ValueError(f"unknown index column {k!r}")
        sql = "SELECT * FROM runs"
        if clauses:
            sql += " WHERE " + " AND ".join(f"{k} = ?" for k, _ in clauses)
        sql += " ORDER BY dataset, upstream, method, fold, seed"
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = [dict(r) for r in db.execute(sql, [v for _, v in clauses])]
        for r in rows:
            r["options"] = json.loads(r["options"] or "{}")
            r["dataset_options"] = json.loads(r["dataset_options"] or "{}")
        return rows

    # ----------------------------------------------------------------------------------- sqlite

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=60.0, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 60000")
        try:
            db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:
            pass  # read-only folders and network filesystems keep the default journal
        return _Closing(db)

    @staticmethod
    def _create(db: sqlite3.Connection) -> None:
        cols = ", ".join(f"{c} {'PRIMARY KEY' if c == 'run_id' else ''}" for c in INDEX_COLUMNS)
        db.execute(f"CREATE TABLE IF NOT EXISTS runs ({cols})")
        db.execute("CREATE INDEX IF NOT EXISTS runs_condition ON runs "
                   "(dataset, budget_signature, upstream, method)")


class _Closing:
    """A connection used as a context manager that also closes (sqlite3's only commits)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, *exc: Any) -> None:
        self.db.close()


def index_row(record: Mapping[str, Any]) -> dict[str, Any]:
    spec = record.get("spec", {})
    metrics = record.get("metrics") or {}
    return {
        "run_id": record["run_id"],
        "status": record.get("status"),
        "upstream": spec.get("upstream"),
        "method": spec.get("method"),
        "dataset": spec.get("dataset"),
        "protocol": spec.get("protocol"),
        "fold": spec.get("fold"),
        "seed": spec.get("seed"),
        "budget": spec.get("budget"),
        "budget_signature": (record.get("budget") or {}).get("signature"),
        "options": json.dumps(spec.get("options", {}), sort_keys=True),
        "dataset_options": json.dumps(spec.get("dataset_options", {}), sort_keys=True),
        "uar": metrics.get("uar"),
        "war": metrics.get("war"),
        "macro_f1": metrics.get("macro_f1"),
        "test_hash": record.get("test_hash"),
        "created": record.get("created"),
    }


def _fault(point: str) -> None:
    """Crash-test hook: die here, without any cleanup, when ``SERBENCH_FAULT`` names this point."""
    if os.environ.get("SERBENCH_FAULT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


def _checksum(predictions: Sequence[Mapping[str, Any]]) -> str:
    h = hashlib.sha256()
    for p in predictions:
        h.update(json.dumps(p, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _write_file(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
