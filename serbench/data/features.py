"""On-disk cache of frozen upstream hidden states: the floor is one forward pass per corpus.

An entry holds, for every utterance and every layer, the mean and the variance over its valid
frames (float32, memory mapped: kilobytes per utterance). Those give the pooled inputs of models
that are linear up to their pooling, and the statistics of feature normalisation, without any
frames. Frames (float16) are kept only for the layers some planned method reads per frame
(``MethodSpec.inputs``, ``MethodSpec.layer_option``), one file per layer, so a plan of pooled
methods stores no frames and a later plan that reads frames adds the layers it needs to the same
entry (one more forward pass, writing only those layers) instead of starting over. Statistics are
computed from the float16 frames exactly as they are stored, so the pooled path and the frame path
see the same numbers; utterances go through the upstream in a fixed order (sorted by key, cut into
the same length buckets), so the frames a later pass adds are those the first pass saw.

Keys. An entry is keyed by upstream name and revision, dataset, and the *content* of every audio
file (blake2b). Content digests (of audio files here, of local model weights for upstream
revisions) are memoised per (path, inode, size, mtime, ctime) in ``file-digests.sqlite``: a
file rewritten with the same size and its old mtime restored still gets a new ctime (which no
user call can set), so it is hashed again; a corpus copied elsewhere hashes to the same entry.
Digests of files changed in the last two seconds are not memoised, so a rewrite within a coarse
timestamp tick is not missed.

Writes. An entry is filled under an exclusive lock into ``.tmp-*`` and renamed into place, so two
processes never fill it twice and a half-written entry is never read; leftovers of a killed fill
are removed by the next fill (or ``serbench cache clear``). Layers added later are written, under
the same lock, into ``.tmp-*`` files inside the entry and renamed into place, and then a new
``meta.json`` replaces the old one in one rename: a reader sees the entry before or after, and
files it already maps are never rewritten. Frames, means and variances are
streamed to disk as they are computed: memory stays at one inference batch whatever the corpus.
A write that fails (a full disk) is one error naming the cache folder, and the ``.tmp-*`` folder is
removed; tests simulate a full disk with ``SERBENCH_FAULT=cache-disk-full:<bytes>`` (each file of
the fill then fails once it would exceed that size).

Checks. Every file's size and blake2b digest is recorded in ``meta.json`` (itself checksummed) and
verified on first use in a process; a damaged entry is reported and recomputed, never used. A file
is checked for its size again before it is mapped and before frames are read from it, so a file
truncated while a run reads it is an error naming the entry, not a Bus error.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

from serbench.data.digests import cache_root, file_digests  # noqa: F401 - file_digests: re-exported
from serbench.data.digests import stat_sig as _stat_sig
from serbench.data.entry import (  # noqa: F401 - CacheCorrupt, read_meta: re-exported
    _VERIFIED,
    CacheCorrupt,
    FeatureEntry,
    read_meta,
)
from serbench.data.fill import (  # noqa: F401 - fill_threads, inference_batches: re-exported
    FORMAT,
    extend,
    fill,
    fill_threads,
    inference_batches,
    threads,
)
from serbench.specs import UpstreamSpec, Utterance

# ------------------------------------------------------------------------------- keys


def entry_key(spec: UpstreamSpec, dataset: str, root: Path, utterances: Sequence[Utterance]) -> str:
    """Upstream + revision, dataset, and every utterance's key, path and audio content."""
    from serbench.data.manifests import audio_path

    utts = sorted(utterances, key=lambda u: u.key)
    digests = file_digests([audio_path(root, u) for u in utts])
    h = hashlib.sha256()
    h.update(json.dumps([FORMAT, spec.name, spec.revision, spec.sample_rate, dataset]).encode())
    for u, d in zip(utts, digests, strict=True):
        h.update(f"{u.key}\0{u.path}\0{d or 'missing'}\n".encode())
    return h.hexdigest()[:20]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def entry_dir(spec: UpstreamSpec, dataset: str, key: str) -> Path:
    return cache_root() / "features" / _safe(spec.name) / f"{_safe(dataset)}-{key}"


@contextlib.contextmanager
def _locked(path: Path, block: bool = True) -> Iterator[bool]:
    """An exclusive ``flock`` on ``path``; yields False (not held) if ``block`` is off and taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _lock_path(final: Path) -> Path:
    return final.parent / f"{final.name}.lock"


def _stale_tmp(final: Path) -> list[Path]:
    return sorted(final.parent.glob(f".tmp-{final.name}.*"))


# ------------------------------------------------------------------------------- open or fill


_OPEN: dict[str, tuple[tuple[int, int, int, int], FeatureEntry]] = {}


def open_entry(final: Path, layers: Sequence[int] | None = ()) -> FeatureEntry:
    """Open a filled entry (shared within the process) and verify the frames of ``layers``
    (None: every stored layer); ``FileNotFoundError`` if there is none."""
    sig = _stat_sig(final / "meta.json")
    hit = _OPEN.get(str(final))
    entry = hit[1] if hit and hit[0] == sig else FeatureEntry(final, read_meta(final))
    entry.check([k for k in (entry.frame_layers if layers is None else layers)
                 if k in entry.frame_layers])
    _OPEN[str(final)] = (sig, entry)
    return entry


def cached_features(
    spec: UpstreamSpec,
    dataset: str,
    root: Path,
    utterances: Sequence[Utterance],
    device: Any,
    *,
    skip_bad_audio: bool = False,
    need_frames: bool = True,
    layers: Sequence[int] | None = None,
    fill_layers: Sequence[int] | None = (),
    quiet: bool = False,
    key: str | None = None,
) -> FeatureEntry:
    """The cache entry for these utterances, computing it once if it is missing or damaged.

    ``need_frames``: the frames of ``layers`` (None: every layer) must be there, and are added to
    an entry that lacks them; without it (pooled-input methods) a new entry stores no frames.
    ``fill_layers``: frames a pass that has to run anyway stores too (those the other runs of
    the plan read: one pass for the plan; None: every layer). Only what the caller reads is
    verified. ``key``: the entry key when the caller has it (:meth:`DatasetView.entry_key`).
    """
    want: Sequence[int] | None = layers if need_frames else ()
    final = entry_dir(spec, dataset, key or entry_key(spec, dataset, root, utterances))
    with contextlib.suppress(FileNotFoundError, CacheCorrupt):
        entry = open_entry(final, want)
        if not entry.missing(want):
            return entry
    store = None if want is None or fill_layers is None else sorted({*want, *fill_layers})
    with _locked(_lock_path(final)):
        entry = None
        try:  # another process may have filled it while we waited
            entry = open_entry(final, want)
        except FileNotFoundError:
            shutil.rmtree(final, ignore_errors=True)  # a folder without meta.json is no entry
        except CacheCorrupt as exc:
            print(f"serbench: {exc}; recomputing the entry", file=sys.stderr)
            _OPEN.pop(str(final), None)
            shutil.rmtree(final)
        for tmp in _stale_tmp(final):  # a fill killed half-way: we hold the lock, it is dead
            shutil.rmtree(tmp, ignore_errors=True)
        for tmp in final.glob(".tmp-*"):  # layers a killed pass was adding
            tmp.unlink(missing_ok=True)
        order = sorted(utterances, key=lambda u: u.key)  # the one order every pass takes
        if entry is None:
            fill(spec, dataset, root, order, device, final, skip_bad_audio, quiet, store)
        elif entry.missing(want):
            extend(spec, dataset, root, order, device, entry, entry.missing(store), quiet)
        return open_entry(final, want)


# ------------------------------------------------------------------------------- ls / clear


def list_entries() -> list[dict[str, Any]]:
    """Every cache entry with its size, for ``serbench cache ls``; damaged ones say so."""
    rows: list[dict[str, Any]] = []
    base = cache_root() / "features"
    for folder in sorted(p for p in base.glob("*/*") if p.is_dir()):
        incomplete = folder.name.startswith(".tmp-")
        try:
            meta = {} if incomplete else read_meta(folder)
            status = "incomplete" if incomplete else "ok"
            for name, want in meta.get("files", {}).items():  # half-deleted or truncated
                if not (folder / name).is_file() or (folder / name).stat().st_size != want["size"]:
                    status = "damaged"
        except (OSError, CacheCorrupt):
            meta, status = {}, "damaged"
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        rows.append({
            "upstream": meta.get("upstream", folder.parent.name),
            "dataset": meta.get("dataset"), "revision": meta.get("revision"),
            "utterances": len(meta.get("keys", [])), "layers": meta.get("layers"),
            "dim": meta.get("dim"), "frames": meta.get("total_frames"), "bytes": size,
            "frame_layers": meta.get("frame_layers"),
            "created": meta.get("created"), "status": status, "path": str(folder),
        })
    return rows


def clear_entries(upstream: str | None = None, dataset: str | None = None) -> list[dict[str, Any]]:
    """Delete matching entries (all when no filter) and leftovers of killed fills.

    An entry being filled right now (its lock is held) is left alone. Returns what was removed.
    """
    removed = []
    for row in list_entries():
        folder = Path(row["path"])
        if upstream and row["upstream"] not in (upstream, _safe(upstream)):
            continue
        if dataset and not (row["dataset"] == dataset
                            or folder.name.startswith((f"{_safe(dataset)}-",
                                                       f".tmp-{_safe(dataset)}-"))):
            continue
        final = folder
        if row["status"] == "incomplete":  # .tmp-<final name>.<pid>.<random>
            final = folder.parent / folder.name[len(".tmp-"):].rsplit(".", 2)[0]
        lock = _lock_path(final)
        with _locked(lock, block=False) as held:
            if not held:
                continue
            _OPEN.pop(str(folder), None)
            shutil.rmtree(folder, ignore_errors=True)
        if not final.exists():
            lock.unlink(missing_ok=True)
        removed.append(row)
    return removed
