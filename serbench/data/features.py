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
import errno
import fcntl
import hashlib
import io
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Sequence

import numpy as np

from serbench.data.batching import bucket_batches
from serbench.data.digests import cache_root, file_digests  # noqa: F401 - file_digests: re-exported
from serbench.data.digests import stat_sig as _stat_sig
from serbench.data.entry import (  # noqa: F401 - CacheCorrupt, read_meta: re-exported
    _VERIFIED,
    POOLED_FILES,
    CacheCorrupt,
    FeatureEntry,
    _meta_digest,
    frames_name,
    read_meta,
)
from serbench.specs import ConfigError, UpstreamSpec, Utterance

FORMAT = 3
INFER_SECONDS = 60.0  # padded audio seconds per inference batch
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
    quiet: bool = False,
) -> FeatureEntry:
    """The cache entry for these utterances, computing it once if it is missing or damaged.

    ``need_frames``: the frames of ``layers`` (None: every layer) must be there, and are added to
    an entry that lacks them; without it (pooled-input methods) a new entry stores no frames.
    """
    want: Sequence[int] | None = layers if need_frames else ()
    final = entry_dir(spec, dataset, entry_key(spec, dataset, root, utterances))
    with contextlib.suppress(FileNotFoundError, CacheCorrupt):
        entry = open_entry(final, want)
        if not entry.missing(want):
            return entry
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
            _fill(spec, dataset, root, order, device, final, skip_bad_audio, quiet, want)
        elif entry.missing(want):
            _extend(spec, dataset, root, order, device, entry, entry.missing(want), quiet)
        return open_entry(final, want)


class _HashedFile:
    """A file written sequentially while its digest and size are computed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        room = os.environ.get("SERBENCH_FAULT", "").partition("cache-disk-full:")[2]
        self.file: BinaryIO = (io.BufferedWriter(_NoRoom(path, int(room))) if room.isdigit()
                               else open(path, "wb"))
        self.hash = hashlib.blake2b(digest_size=16)
        self.size = 0

    def write(self, array: np.ndarray) -> None:
        data = np.ascontiguousarray(array).data
        with self._named():
            self.file.write(data)
        self.hash.update(data)
        self.size += data.nbytes

    def close(self) -> dict[str, Any]:
        with self._named():
            self.file.flush()
            os.fsync(self.file.fileno())
        self.file.close()
        _VERIFIED[str(self.path)] = _stat_sig(self.path)  # re-keyed to the final path below
        return {"size": self.size, "digest": self.hash.hexdigest()}

    @contextlib.contextmanager
    def _named(self) -> Iterator[None]:
        """A write error (a full disk) as one line naming the cache folder and the way out."""
        try:
            yield
        except OSError as exc:
            where = self.path.parent.parent
            raise ConfigError(f"cannot write the feature cache in {where}: "
                              f"{exc.strerror or exc}; free some space there or point "
                              "SERBENCH_CACHE at a disk with room") from None

    def discard(self) -> None:
        """Close without writing what is buffered (the fill failed; its folder is removed)."""
        with contextlib.suppress(OSError):
            self.file.close()


class _NoRoom(io.FileIO):
    """A file on a disk that is full after ``room`` bytes: the ``cache-disk-full:<room>``
    fault of ``SERBENCH_FAULT``, for tests of a full disk during the fill."""

    def __init__(self, path: Path, room: int) -> None:
        super().__init__(path, "wb")
        self.room = room

    def write(self, data: Any) -> int:
        n = memoryview(data).nbytes
        if n > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.name))
        self.room -= n
        return super().write(data)


def fill_threads() -> int:
    """CPU threads of the fill's forward pass: ``$SERBENCH_FILL_THREADS``, else every core.

    The fill is the one big computation and runs once under a lock; the training that follows may
    run on fewer threads (small heads train fastest on one), so it sets its own count.
    """
    value = os.environ.get("SERBENCH_FILL_THREADS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(f"SERBENCH_FILL_THREADS must be a positive integer, got {value!r}")
        return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Torch's intra-op thread count set to ``n`` for a block, then restored."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def inference_batches(durations: Sequence[float]) -> list[list[int]]:
    """The length buckets of one forward pass over a corpus (also the speed floor's batches)."""
    return bucket_batches(durations, INFER_SECONDS)


def _forward(spec: UpstreamSpec, model: Any, dataset: str, root: Path,
             utterances: Sequence[Utterance], device: Any, skip_bad_audio: bool, quiet: bool,
             skipped: list[dict[str, str]]) -> Iterator[tuple[Utterance, list[np.ndarray]]]:
    """One forward pass of ``model`` in the cache's length buckets: each utterance with its
    valid frames of every layer (float16 ``(n, D)`` each), in order; bad audio is skipped (and
    listed in ``skipped``) only with ``skip_bad_audio``."""
    import torch

    from serbench.contracts import upstream_output
    from serbench.data.audio import AudioError, load_audio
    from serbench.data.manifests import audio_path

    progress = _progress(len(utterances), f"features {spec.name} on {dataset}", quiet)
    try:
        model.eval()
        for batch in inference_batches([u.duration or 1.0 for u in utterances]):
            waves, good = [], []
            for i in batch:
                u = utterances[i]
                try:
                    waves.append(load_audio(audio_path(root, u), spec.sample_rate))
                    good.append(u)
                except AudioError as exc:
                    if not skip_bad_audio:
                        raise
                    skipped.append({"key": u.key, "path": u.path, "reason": exc.problem})
                    print(f"serbench: warning: skipping {exc}", file=sys.stderr)
            progress.update(len(batch))
            if not good:
                continue
            lengths = torch.tensor([len(w) for w in waves])
            padded = torch.zeros(len(waves), int(lengths.max()))
            for j, w in enumerate(waves):
                padded[j, : len(w)] = torch.from_numpy(w)
            with torch.inference_mode(), threads(fill_threads()):
                hidden, frame_lengths = upstream_output(spec.name, model(padded.to(device),
                                                                         lengths.to(device)))
                counts = [max(int(n), 1) for n in frame_lengths.tolist()]
                # float16 on the device (half the transfer), converted by numpy on the CPU
                hidden16 = [h.to(torch.float16).cpu().numpy() if h.device.type != "cpu"
                            else h.float().numpy().astype(np.float16) for h in hidden]
            del hidden
            for j, u in enumerate(good):
                yield u, [h[j, : counts[j]] for h in hidden16]
    finally:
        progress.close()  # cleared before an error or "interrupted" line is printed


def _fill(
    spec: UpstreamSpec,
    dataset: str,
    root: Path,
    utterances: Sequence[Utterance],
    device: Any,
    final: Path,
    skip_bad_audio: bool,
    quiet: bool,
    frame_layers: Sequence[int] | None,
) -> None:
    """A new entry: the pooled statistics of every layer, the frames of ``frame_layers`` (None:
    every layer)."""
    started = time.perf_counter()
    tmp = final.parent / f".tmp-{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    files = {name: _HashedFile(tmp / name) for name in POOLED_FILES}
    try:
        keys: list[str] = []
        skipped: list[dict[str, str]] = []
        offset, layers, dim = 0, 0, 0
        stored: list[int] = []
        model = spec.loader(device)
        for u, frames in _forward(spec, model, dataset, root, utterances, device, skip_bad_audio,
                                  quiet, skipped):
            if not keys:
                layers, dim = len(frames), frames[0].shape[1]
                stored = sorted(set(range(layers) if frame_layers is None else frame_layers))
                if stored and not 0 <= stored[0] <= stored[-1] < layers:
                    raise ConfigError(f"upstream {spec.name} gave {layers} layers; frames of "
                                      f"layers {stored} were asked for")
                files.update({frames_name(k): _HashedFile(tmp / frames_name(k)) for k in stored})
            n = len(frames[0])
            stats = np.empty((2, layers, dim), dtype=np.float32)
            for k, x16 in enumerate(frames):
                xd = x16.astype(np.float64)  # statistics of the frames exactly as stored
                stats[0, k], stats[1, k] = xd.mean(0), xd.var(0)
                if not np.isfinite(stats[:, k]).all():
                    raise ConfigError(f"upstream {spec.name} gave non-finite values (or "
                                      f"values beyond float16) in layer {k} for {u.path}")
            for k in stored:
                files[frames_name(k)].write(frames[k])
            files["mean.f32"].write(stats[0])
            files["var.f32"].write(stats[1])
            files["index.i64"].write(np.array([offset, n], dtype=np.int64))
            keys.append(u.key)
            offset += n
        if not keys:
            raise ConfigError(f"no usable audio in dataset {dataset}: every file was skipped")
        written = {name: f.close() for name, f in files.items()}
        body = {
            "format": FORMAT,
            "upstream": spec.name,
            "revision": str(getattr(model, "revision", None) or spec.revision),
            "spec_revision": spec.revision,
            "dataset": dataset,
            "sample_rate": spec.sample_rate,
            "layers": layers,
            "dim": dim,
            "frame_layers": stored,
            "total_frames": offset,
            "keys": keys,
            "skipped": skipped,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "fill_seconds": round(time.perf_counter() - started, 3),
            "files": written,
        }
        _write_meta(tmp, body)
        os.rename(tmp, final)
        for name in files:  # the rename keeps inodes and times: what was hashed stays verified
            _VERIFIED[str(final / name)] = _VERIFIED.pop(str(tmp / name))
        _fsync_dir(final.parent)
    finally:
        for f in files.values():
            f.discard()
        shutil.rmtree(tmp, ignore_errors=True)


def _extend(spec: UpstreamSpec, dataset: str, root: Path, utterances: Sequence[Utterance],
            device: Any, entry: FeatureEntry, layers: Sequence[int], quiet: bool) -> None:
    """Add the frames of ``layers`` to a filled entry: one more forward pass in the same order,
    each frame count checked against the entry's index; the files it maps stay as they are."""
    started = time.perf_counter()
    final = entry.path
    if not 0 <= min(layers) <= max(layers) < entry.num_layers:
        raise ConfigError(f"upstream {spec.name} has {entry.num_layers} layers in the cache; "
                          f"frames of layers {list(layers)} were asked for")
    tag = f"{os.getpid()}.{uuid.uuid4().hex[:8]}"
    files = {frames_name(k): _HashedFile(final / f".tmp-{frames_name(k)}.{tag}") for k in layers}
    bad = {s["key"] for s in entry.skipped}
    try:
        done, offset = 0, 0
        good = [u for u in utterances if u.key not in bad]
        for u, frames in _forward(spec, spec.loader(device), dataset, root, good, device, False,
                                  quiet, []):
            row, n = entry.rows.get(u.key), len(frames[0])
            if row is None or tuple(int(v) for v in entry.index[row]) != (offset, n):
                raise CacheCorrupt(f"feature cache entry {final}: a second pass of upstream "
                                   f"{spec.name} does not give the frames of the first for "
                                   f"{u.path}")
            for k in layers:
                files[frames_name(k)].write(frames[k])
            done, offset = done + 1, offset + n
        if done != len(entry.keys):
            raise CacheCorrupt(f"feature cache entry {final}: a second pass of upstream "
                               f"{spec.name} read {done} of its {len(entry.keys)} utterances")
        written = {name: f.close() for name, f in files.items()}
        for name in files:
            os.rename(files[name].path, final / name)
            _VERIFIED[str(final / name)] = _VERIFIED.pop(str(files[name].path))
        body = dict(entry.meta)
        body["frame_layers"] = sorted({*entry.frame_layers, *layers})
        body["files"] = {**entry.meta["files"], **written}
        body["extended"] = [*entry.meta.get("extended", []), {
            "layers": list(layers), "seconds": round(time.perf_counter() - started, 3),
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]
        _write_meta(final, body, replace_in=final)
        _fsync_dir(final)
    finally:
        for f in files.values():
            f.discard()
            f.path.unlink(missing_ok=True)


def _write_meta(folder: Path, body: dict[str, Any], replace_in: Path | None = None) -> None:
    """``meta.json`` with its digest, durable; with ``replace_in`` written aside and renamed over
    the entry's current one (readers see the old entry or the new, never half of one)."""
    doc = {"body": body, "blake2b": _meta_digest(body)}
    path = folder / (f".tmp-meta.json.{os.getpid()}" if replace_in else "meta.json")
    with open(path, "w") as f:
        f.write(json.dumps(doc))
        f.flush()
        os.fsync(f.fileno())
    if replace_in:
        os.rename(path, replace_in / "meta.json")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Silent:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, quiet: bool) -> Any:
    if quiet:
        return _Silent()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="utt", file=sys.stderr, leave=False)


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
