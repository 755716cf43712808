"""Content digests of files (audio, local model weights), memoised per (path, inode, size, mtime,
ctime) in ``file-digests.sqlite`` under the cache root: a file rewritten with the same size and its
old mtime restored still gets a new ctime, so it is hashed again; files changed in the last two
seconds are hashed but not memoised. Upstream plugins reach it as ``serbench.file_digests``."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Sequence

RACY_NS = 2_000_000_000  # files changed this recently are hashed but their digest not memoised
SCAN_FROM = 256  # from this many files on, the whole memo is read at once


def cache_root() -> Path:
    return Path(os.environ.get("SERBENCH_CACHE") or Path.home() / ".cache" / "serbench")


def stat_sig(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _memo() -> sqlite3.Connection:
    path = cache_root() / "file-digests.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=60)
    db.execute("CREATE TABLE IF NOT EXISTS digest (path TEXT PRIMARY KEY, ino INTEGER, "
               "size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, blake2b TEXT)")
    return db


def file_digests(paths: Sequence[Path]) -> list[str | None]:
    """Content digest of each file (``None`` if missing), memoised per path and stat signature.

    The memo is only a shortcut: if it cannot be opened (a read-only cache) every file is hashed;
    if it is damaged it is removed, and made again next time.
    """
    out: list[str | None] = []
    db: sqlite3.Connection | None = None
    keys = [str(p) if isinstance(p, Path) and p.is_absolute() else str(Path(p).absolute())
            for p in paths]
    try:
        db = _memo()
        # a few files (a model's weights) are looked up, not the memo of every corpus read
        rows = (db.execute("SELECT * FROM digest") if len(keys) > SCAN_FROM else
                (r for k in keys for r in db.execute("SELECT * FROM digest WHERE path = ?", (k,))))
        known = {row[0]: (tuple(row[1:5]), row[5]) for row in rows}
    except (OSError, sqlite3.Error) as exc:
        if db is not None:
            db.close()
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            (cache_root() / "file-digests.sqlite").unlink(missing_ok=True)
        db, known = None, {}
    fresh = []
    now = time.time_ns()
    for key in keys:  # one stat per file, no new Path: a run keys 50k files in a fraction of a s
        try:
            st = os.stat(key)
        except OSError:
            out.append(None)
            continue
        sig = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        memo = known.get(key)
        if memo and memo[0] == sig:
            out.append(memo[1])
            continue
        digest = file_digest(Path(key))
        out.append(digest)
        if now - max(sig[2], sig[3]) > RACY_NS:
            fresh.append((key, *sig, digest))
    if db is not None:
        with contextlib.closing(db), contextlib.suppress(sqlite3.Error):
            if fresh:
                with db:
                    db.executemany("INSERT OR REPLACE INTO digest VALUES (?, ?, ?, ?, ?, ?)",
                                   fresh)
    return out
