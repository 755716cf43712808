"""On-disk cache of frozen upstream hidden states: the floor is one forward pass per corpus.

An entry holds, for every utterance, all layers' frames (float16, one flat file read through a
memory map) and the per-layer mean and mean of squares over valid frames (float32), which give the
pooled inputs of linear-up-to-pooling probes and the statistics of feature normalisation without
touching the frames. Entries are keyed by upstream name and revision, dataset, and each audio file's
size and modification time; they are filled under a lock into a temporary folder and renamed into
place, so two processes never fill one twice and a half-written entry is never read. Every file's
checksum is stored and verified on first use: a damaged entry is recomputed, not used.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .batching import bucket_batches
from .specs import ConfigError, UpstreamSpec, Utterance

FORMAT = 1
INFER_SECONDS = 120.0  # audio seconds per inference batch


def cache_root() -> Path:
    return Path(os.environ.get("SERBENCH_CACHE") or Path.home() / ".cache" / "serbench")


class CacheCorrupt(RuntimeError):
    """A cache file does not match its recorded checksum."""


@dataclass
class FeatureEntry:
    """A filled cache entry, read-only."""

    path: Path
    meta: dict[str, Any]
    rows: dict[str, int] = field(default_factory=dict)
    pooled: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (N, L, D) mean over frames
    sqmean: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (N, L, D) mean of squares
    index: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (N, 2) frame offset, count
    _frames: np.memmap | None = None

    @classmethod
    def open(cls, path: Path) -> FeatureEntry:
        meta = json.loads((path / "meta.json").read_text())
        for name in ("pooled.npy", "sqmean.npy", "index.npy"):
            _verify(path / name, meta["checksums"][name])
        entry = cls(path, meta)
        entry.rows = {k: i for i, k in enumerate(meta["keys"])}
        entry.pooled = np.load(path / "pooled.npy")
        entry.sqmean = np.load(path / "sqmean.npy")
        entry.index = np.load(path / "index.npy")
        return entry

    @property
    def num_layers(self) -> int:
        return int(self.meta["layers"])

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    @property
    def revision(self) -> str:
        return str(self.meta.get("revision"))

    @property
    def skipped(self) -> list[dict[str, str]]:
        return list(self.meta.get("skipped", []))

    def frames_file(self) -> np.memmap:
        """The frames of every utterance, ``(total_frames, L, D)`` float16, verified once."""
        if self._frames is None:
            path = self.path / "frames.f16"
            _verify(path, self.meta["checksums"]["frames.f16"])
            total = int(self.meta["total_frames"])
            shape = (total, self.num_layers, self.dim)
            self._frames = np.memmap(path, dtype=np.float16, mode="r", shape=shape)
        return self._frames

    def frames(self, key: str) -> np.ndarray:
        off, n = self.index[self.rows[key]]
        return self.frames_file()[off : off + n]

    def n_frames(self, key: str) -> int:
        return int(self.index[self.rows[key], 1])

    def moments(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Frame-weighted mean and standard deviation per (layer, dim) over ``keys``' frames."""
        rows = np.array([self.rows[k] for k in keys])
        w = self.index[rows, 1].astype(np.float64)[:, None, None]
        mean = (self.pooled[rows] * w).sum(0) / w.sum()
        sq = (self.sqmean[rows] * w).sum(0) / w.sum()
        std = np.sqrt(np.maximum(sq - mean**2, 0.0))
        return mean.astype(np.float32), np.maximum(std, 1e-5).astype(np.float32)


def _digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _verify(path: Path, expected: str) -> None:
    if not path.is_file() or _digest(path) != expected:
        raise CacheCorrupt(f"feature cache file {path} is damaged")


def entry_key(spec: UpstreamSpec, dataset: str, root: Path, utterances: Sequence[Utterance]) -> str:
    """Upstream + revision, dataset, and every audio file's key, size and modification time."""
    from .manifests import audio_path

    h = hashlib.sha256()
    h.update(json.dumps([FORMAT, spec.name, spec.revision, spec.sample_rate, dataset]).encode())
    for u in sorted(utterances, key=lambda u: u.key):
        try:
            st = audio_path(root, u).stat()
            h.update(f"{u.key}\0{u.path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{u.key}\0{u.path}\0missing\n".encode())
    return h.hexdigest()[:20]


def entry_dir(spec: UpstreamSpec, dataset: str, key: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in spec.name)
    return cache_root() / "features" / safe / f"{dataset}-{key}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cached_features(
    spec: UpstreamSpec,
    dataset: str,
    root: Path,
    utterances: Sequence[Utterance],
    device: Any,
    *,
    skip_bad_audio: bool = False,
    need_frames: bool = True,
    quiet: bool = False,
) -> FeatureEntry:
    """The cache entry for these utterances, computing it once if it is missing or damaged."""
    key = entry_key(spec, dataset, root, utterances)
    final = entry_dir(spec, dataset, key)
    for attempt in range(2):
        if (final / "meta.json").is_file():
            try:
                entry = FeatureEntry.open(final)
                if need_frames:
                    entry.frames_file()
                return entry
            except (CacheCorrupt, OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
                if attempt:
                    raise
                print(f"serbench: {exc}; recomputing it", file=sys.stderr)
                with _locked(final.with_suffix(".lock")):
                    shutil.rmtree(final, ignore_errors=True)
        with _locked(final.with_suffix(".lock")):
            if not (final / "meta.json").is_file():  # another process may have filled it
                _fill(spec, dataset, root, utterances, device, final, skip_bad_audio, quiet)
    return FeatureEntry.open(final)


def _fill(
    spec: UpstreamSpec,
    dataset: str,
    root: Path,
    utterances: Sequence[Utterance],
    device: Any,
    final: Path,
    skip_bad_audio: bool,
    quiet: bool,
) -> None:
    import torch

    from .audio import AudioError, load_audio
    from .manifests import audio_path

    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model = spec.loader(device)
        model.eval()
        durations = [u.duration or 1.0 for u in utterances]
        batches = bucket_batches(durations, INFER_SECONDS)
        keys: list[str] = []
        pooled: list[np.ndarray] = []
        sqmean: list[np.ndarray] = []
        index: list[tuple[int, int]] = []
        skipped: list[dict[str, str]] = []
        offset = 0
        progress = _progress(len(utterances), f"features {spec.name} on {dataset}", quiet)
        with open(tmp / "frames.f16", "wb") as frames_file:
            for batch in batches:
                waves, good = [], []
                for i in batch:
                    u = utterances[i]
                    try:
                        waves.append(load_audio(audio_path(root, u), spec.sample_rate))
                        good.append(u)
                    except AudioError as exc:
                        if not skip_bad_audio:
                            raise
                        skipped.append({"key": u.key, "path": u.path, "reason": str(exc)})
                        print(f"serbench: warning: skipping {exc}", file=sys.stderr)
                progress.update(len(batch))
                if not good:
                    continue
                lengths = torch.tensor([len(w) for w in waves])
                padded = torch.zeros(len(waves), int(lengths.max()))
                for j, w in enumerate(waves):
                    padded[j, : len(w)] = torch.from_numpy(w)
                with torch.inference_mode():
                    hidden, frame_lengths = model(padded.to(device), lengths.to(device))
                stack = torch.stack([h.float() for h in hidden], dim=2).cpu()  # (B, T, L, D)
                for j, u in enumerate(good):
                    n = max(int(frame_lengths[j]), 1)
                    x = stack[j, :n].numpy()
                    if not np.isfinite(x).all():
                        raise ConfigError(f"upstream {spec.name} produced non-finite values "
                                          f"for {u.path}")
                    frames_file.write(x.astype(np.float16).tobytes())
                    xd = x.astype(np.float64)
                    pooled.append(xd.mean(0).astype(np.float32))
                    sqmean.append((xd**2).mean(0).astype(np.float32))
                    index.append((offset, n))
                    keys.append(u.key)
                    offset += n
            frames_file.flush()
            os.fsync(frames_file.fileno())
        progress.close()
        if not keys:
            raise ConfigError(f"no usable audio in dataset {dataset}: every file was skipped")
        np.save(tmp / "pooled.npy", np.stack(pooled))
        np.save(tmp / "sqmean.npy", np.stack(sqmean))
        np.save(tmp / "index.npy", np.array(index, dtype=np.int64))
        meta = {
            "format": FORMAT,
            "upstream": spec.name,
            "revision": str(getattr(model, "revision", spec.revision)),
            "dataset": dataset,
            "layers": int(stack.shape[2]),
            "dim": int(stack.shape[3]),
            "total_frames": offset,
            "keys": keys,
            "skipped": skipped,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "checksums": {n: _digest(tmp / n)
                          for n in ("frames.f16", "pooled.npy", "sqmean.npy", "index.npy")},
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


def list_entries() -> list[dict[str, Any]]:
    """Every cache entry with its size, for ``serbench cache ls``."""
    rows = []
    base = cache_root() / "features"
    if not base.is_dir():
        return rows
    for meta_path in sorted(base.glob("*/*/meta.json")):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        size = sum(p.stat().st_size for p in meta_path.parent.iterdir() if p.is_file())
        rows.append({
            "upstream": meta.get("upstream"), "dataset": meta.get("dataset"),
            "revision": meta.get("revision"), "utterances": len(meta.get("keys", [])),
            "layers": meta.get("layers"), "dim": meta.get("dim"),
            "bytes": size, "created": meta.get("created"), "path": str(meta_path.parent),
        })
    return rows


def clear_entries(upstream: str | None = None, dataset: str | None = None) -> int:
    """Delete matching entries (all when no filter); returns how many were removed."""
    n = 0
    for row in list_entries():
        if upstream and row["upstream"] != upstream:
            continue
        if dataset and row["dataset"] != dataset:
            continue
        path = Path(row["path"])
        with _locked(path.with_suffix(".lock")):
            shutil.rmtree(path, ignore_errors=True)
        path.with_suffix(".lock").unlink(missing_ok=True)
        n += 1
    return n
