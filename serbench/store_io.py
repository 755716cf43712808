"""What the results store writes, file by file: durable writes (fsync'd, then renamed), JSON that
refuses non-finite numbers, a run's index row as SQLite values, checksums, and the crash-test
hook. :mod:`serbench.store` composes them into the write-once protocol."""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import signal
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from serbench.specs import ConfigError

SQLITE_INT = (-(2**63), 2**63)


class StoreError(ConfigError):
    """The results folder cannot be read or written."""


def test_set_hash(keys: Iterable[str]) -> str:
    """Order-free hash of the test utterance keys: paired tests refuse runs whose hashes differ."""
    h = hashlib.sha256()
    for key in sorted(keys):
        h.update(key.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def finite_json(obj: Any, what: str, **kwargs: Any) -> str:
    """``json.dumps`` that refuses NaN and infinities (not JSON) with a line naming the field."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError:
        where = _non_finite(obj, "") or "a value"
        raise StoreError(f"{what}: {where} is not a finite number, and run records hold only "
                         "finite numbers; nothing was stored (the run diverged or a method "
                         "reported NaN: lower lr or check the inputs)") from None


def _non_finite(obj: Any, path: str) -> str | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return f"{path or 'the value'} ({obj})"
    items = (obj.items() if isinstance(obj, Mapping)
             else enumerate(obj) if isinstance(obj, (list, tuple)) else ())
    for k, v in items:
        found = _non_finite(v, f"{path}.{k}" if path else str(k))
        if found:
            return found
    return None


def index_row(record: Mapping[str, Any]) -> dict[str, Any]:
    spec = record.get("spec") or {}
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
        "data_hash": record.get("data_hash"),
        "schema": record.get("schema"),
        "created": record.get("created"),
    }


def index_values(record: Mapping[str, Any]) -> list[Any]:
    """The index row as SQLite values: every integer within SQLite's range, numbers finite."""
    out = []
    for value in index_row(record).values():
        if isinstance(value, bool):
            value = int(value)
        elif isinstance(value, int) and not SQLITE_INT[0] <= value < SQLITE_INT[1]:
            value = str(value)
        elif isinstance(value, float) and not math.isfinite(value):
            value = None
        elif value is not None and not isinstance(value, (int, float, str)):
            value = json.dumps(value, default=str)
        out.append(value)
    return out


def remove_dead_temporaries(root: Path) -> None:
    """Remove ``.serbench.db.<pid>.tmp*`` files of rebuilds whose process is gone."""
    for path in root.glob(".serbench.db.*.tmp*"):
        pid = path.name.split(".")[3]
        if pid.isdigit() and not alive(int(pid)):
            path.unlink(missing_ok=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError as exc:  # another user's process
        return exc.errno == errno.EPERM
    return True


def fault(point: str) -> None:
    """Crash-test hook: die here, without any cleanup, when ``SERBENCH_FAULT`` names this point."""
    if os.environ.get("SERBENCH_FAULT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


def checksum(predictions: Sequence[Mapping[str, Any]]) -> str:
    h = hashlib.sha256()
    for p in predictions:
        h.update(json.dumps(p, sort_keys=True).encode())
    return h.hexdigest()[:16]


def write_file(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
