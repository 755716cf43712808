"""Writing feature-cache entries: one forward pass of the upstream, streamed to disk.

A new entry (:func:`fill`) gets the pooled statistics of every layer and the frames of the layers
asked for; :func:`extend` adds other layers' frames to an entry with a second pass in the same
order, checking every frame count against the entry's index. Every file is written sequentially
while its blake2b digest is computed, so memory stays at one inference batch whatever the corpus.
Keys, locks and reading are :mod:`serbench.data.features`'s; this module runs under its lock.
"""

from __future__ import annotations

import contextlib
import errno
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
from serbench.data.digests import stat_sig as _stat_sig
from serbench.data.entry import (
    _VERIFIED,
    POOLED_FILES,
    CacheCorrupt,
    FeatureEntry,
    _meta_digest,
    frames_name,
)
from serbench.specs import ConfigError, UpstreamSpec, Utterance

FORMAT = 3
INFER_SECONDS = 60.0  # padded audio seconds per inference batch
HEAP_SLACK = int(os.environ.get("SERBENCH_FILL_HEAP_SLACK", 256 << 20))  # see _HeapGuard


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
        heap = _HeapGuard()
        for batch in inference_batches([u.duration or 1.0 for u in utterances]):
            heap.check()
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


class _HeapGuard:
    """Keeps the fill's heap at its live size: batches of ever new shapes leave glibc's heap
    fragmented (freed, never returned), so without this the resident memory of a fill grew with
    the corpus (300 MB at 1k utterances, 1.5 GB at 50k, for one inference batch held at a time).
    When the anonymous resident memory has grown :data:`HEAP_SLACK` past its level after the
    last trim, ``malloc_trim`` returns the free pages, so the fill stays within a batch's working
    set and the slack. Measured on a tiny WavLM, the heap grew 0.81 GB over a 20k-utterance fill
    without it and 0.38 GB with it (0.25 GB at 1k). Each trim costs the re-faulting of what it
    freed (about 0.15 s here), so it runs only past the slack: 65 trims over those 20k
    utterances (+30 % CPU for a model whose forward pass is almost free), a handful for a real
    one. A no-op without glibc or ``/proc``.
    ``$SERBENCH_FILL_HEAP_SLACK`` (bytes) sets the slack."""

    def __init__(self) -> None:
        self._trim: Any = None
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            self._trim = ctypes.CDLL("libc.so.6").malloc_trim
        self.floor = self._anon() if self._trim else None

    @staticmethod
    def _anon() -> int | None:
        try:
            with open("/proc/self/status", "rb") as f:
                for line in f:
                    if line.startswith(b"RssAnon:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def check(self) -> None:
        if self.floor is None:
            return
        now = self._anon()
        if now is not None and now > self.floor + HEAP_SLACK:
            self._trim(0)
            self.floor = self._anon()


def fill(
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


def extend(spec: UpstreamSpec, dataset: str, root: Path, utterances: Sequence[Utterance],
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
