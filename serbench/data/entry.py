"""A filled feature-cache entry as read back: its files, their integrity checks, and the arrays.

Layout: the pooled statistics of every layer (``mean.f32``, ``var.f32``: kilobytes per
utterance) and the frame index are in every entry; frames are one file per layer
(``frames-007.f16``), present for the layers some plan read (``meta.json`` lists them under
``frame_layers``), so a later fill adds a layer's file without touching the others.

The writer is :mod:`serbench.data.features` (keys, locks, the fill); this module only reads what
a fill left, so a damaged file is caught here (sizes and blake2b digests from ``meta.json``) before
any array is mapped.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from serbench.data.digests import file_digest as _file_digest
from serbench.data.digests import stat_sig as _stat_sig
from serbench.specs import ConfigError

POOLED_FILES = {  # name -> dtype, every entry has them; shapes come from meta.json
    "mean.f32": np.float32,  # (N, L, D) mean over valid frames, every layer
    "var.f32": np.float32,  # (N, L, D) variance over valid frames, every layer
    "index.i64": np.int64,  # (N, 2) frame offset, frame count
}
FRAMES_DTYPE = np.float16  # frames-<layer>.f16: (total_frames, D), for the layers some plan read


def frames_name(layer: int) -> str:
    """The file holding every frame of one layer, utterance after utterance."""
    return f"frames-{layer:03d}.f16"


class CacheCorrupt(RuntimeError):
    """A cache file does not match its recorded size or checksum."""


# ------------------------------------------------------------------------------- integrity


_VERIFIED: dict[str, tuple[int, int, int, int]] = {}  # path -> stat signature when it checked out


def _verify(path: Path, size: int, digest: str) -> None:
    """Raise ``CacheCorrupt`` unless ``path`` has this size and digest (once per file version)."""
    try:
        sig = _stat_sig(path)
    except OSError:
        raise CacheCorrupt(f"feature cache file {path} is missing") from None
    if _VERIFIED.get(str(path)) == sig:
        return
    if sig[1] != size:
        raise CacheCorrupt(f"feature cache file {path} has {sig[1]} bytes, {size} were written")
    if _file_digest(path) != digest:
        raise CacheCorrupt(f"feature cache file {path} does not match its checksum")
    _VERIFIED[str(path)] = sig


def _meta_digest(body: dict[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def read_meta(path: Path) -> dict[str, Any]:
    """An entry's ``meta.json`` body, checked against its own digest."""
    try:
        doc = json.loads((path / "meta.json").read_text())
        body = doc["body"]
        ok = doc["blake2b"] == _meta_digest(body)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise CacheCorrupt(f"feature cache file {path / 'meta.json'} is damaged")
    return body


# ------------------------------------------------------------------------------- entries


class FeatureEntry:
    """A filled cache entry, read-only; arrays are memory maps of the entry's files."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path = path
        self.meta = meta
        n, layers, dim = len(meta["keys"]), self.num_layers, self.dim
        self._frames: dict[int, np.ndarray] = {}  # layer -> its memory map, once verified
        self.check(())
        self.rows: dict[str, int] = {k: i for i, k in enumerate(meta["keys"])}
        self.pooled: np.ndarray = self._map("mean.f32", np.float32, (n, layers, dim))
        self.var: np.ndarray = self._map("var.f32", np.float32, (n, layers, dim))
        self.index: np.ndarray = self._map("index.i64", np.int64, (n, 2))
        self._sqmean: np.ndarray | None = None

    @property
    def frame_layers(self) -> tuple[int, ...]:
        """The layers whose frames this entry holds (none: pooled statistics only)."""
        return tuple(int(k) for k in self.meta.get("frame_layers", ()))

    def missing(self, layers: Sequence[int] | None) -> list[int]:
        """Which of ``layers`` (None: every layer) have no frames here."""
        want = range(self.num_layers) if layers is None else layers
        have = set(self.frame_layers)
        return sorted({int(k) for k in want} - have)

    def check(self, layers: Sequence[int] | None) -> None:
        """Verify the pooled files and the frames of ``layers`` (None: every stored layer),
        hashing each file only once per version of it in a process."""
        names = list(POOLED_FILES)
        chosen = self.frame_layers if layers is None else layers
        names += [frames_name(k) for k in sorted({*chosen, *self._frames})]
        for name in names:
            if name not in self.meta["files"]:
                raise CacheCorrupt(f"feature cache entry {self.path} has no {name}")
            _verify(self.path / name, **self.meta["files"][name])

    def _map(self, name: str, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
        if not all(shape):
            return np.zeros(shape, dtype=dtype)
        self._intact(name)  # a mapped page past the end of a file is a Bus error, not an error
        # copy-on-write: torch takes the arrays without a read-only warning; nothing writes them
        return np.memmap(self.path / name, dtype=dtype, mode="c", shape=shape)

    def _intact(self, name: str) -> None:
        """Raise ``CacheCorrupt`` naming the entry if ``name`` is no longer its written size
        (truncated while in use): reading its mapped pages would kill the process."""
        want = int(self.meta["files"][name]["size"])
        try:
            size = os.stat(self.path / name).st_size
        except OSError:
            size = -1
        if size < want:
            raise CacheCorrupt(
                f"feature cache entry {self.path} was damaged while in use ({name}: "
                f"{max(size, 0)} of {want} bytes); run `serbench cache clear --upstream "
                f"{self.meta.get('upstream')}` and run again")

    @property
    def num_layers(self) -> int:
        return int(self.meta["layers"])

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    @property
    def keys(self) -> list[str]:
        return list(self.meta["keys"])

    @property
    def revision(self) -> str:
        return str(self.meta.get("revision"))

    @property
    def skipped(self) -> list[dict[str, str]]:
        return list(self.meta.get("skipped", []))

    @property
    def sqmean(self) -> np.ndarray:
        """``(N, L, D)`` mean of squares over each utterance's frames (variance + mean²)."""
        if self._sqmean is None:
            m = np.asarray(self.pooled, dtype=np.float64)
            self._sqmean = (np.asarray(self.var, dtype=np.float64) + m * m).astype(np.float32)
        return self._sqmean

    def layer_file(self, layer: int) -> np.ndarray:
        """``(total_frames, D)`` float16 frames of one layer (a memory map, verified once)."""
        if layer not in self._frames:
            if layer not in self.frame_layers:
                raise CacheCorrupt(f"feature cache entry {self.path} holds no frames of layer "
                                   f"{layer} (it has {list(self.frame_layers) or 'none'})")
            name = frames_name(layer)
            _verify(self.path / name, **self.meta["files"][name])
            shape = (int(self.meta["total_frames"]), self.dim)
            self._frames[layer] = self._map(name, FRAMES_DTYPE, shape)
        return self._frames[layer]

    def frames_of(self, key: str, layer: int) -> np.ndarray:
        """``(n, D)`` float16 frames of one utterance in one layer (a view of the memory map)."""
        off, n = (int(v) for v in self.index[self.rows[key]])
        frames = self.layer_file(layer)
        self._intact(frames_name(layer))
        return frames[off : off + n]

    def layer_frames(self, key: str, layers: Sequence[int] | None = None) -> np.ndarray:
        """``(len(layers), n, D)`` float16 frames of one utterance (every layer when None)."""
        chosen = range(self.num_layers) if layers is None else layers
        return np.stack([self.frames_of(key, k) for k in chosen])

    def frames(self, key: str) -> np.ndarray:
        """``(n, L, D)`` float16 frames of one utterance, every layer."""
        return self.layer_frames(key).transpose(1, 0, 2)

    def n_frames(self, key: str) -> int:
        return int(self.index[self.rows[key], 1])

    def moments(self, keys: Sequence[str], layers: Sequence[int] | None = None,
                chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Frame-weighted mean and standard deviation per (layer, dim) over ``keys``' frames,
        for ``layers`` (None: every layer).

        Merges per-utterance means and variances (Chan et al.), in float64 and in chunks of rows,
        so it is exact to rounding and never loads all rows at once.
        """
        rows = np.sort(np.array([self.rows[k] for k in keys], dtype=np.int64))
        if rows.size == 0:
            raise ConfigError("feature normalisation needs at least one utterance")
        pick = slice(None) if layers is None else list(layers)
        w = self.index[rows, 1].astype(np.float64)
        total = w.sum()
        mean: Any = 0.0
        for s in range(0, rows.size, chunk):
            r = rows[s : s + chunk]
            mean = mean + np.einsum("n,nld->ld", w[s : s + chunk],
                                    self.pooled[r][:, pick].astype(np.float64))
        mean = mean / total
        var: Any = 0.0
        for s in range(0, rows.size, chunk):
            r = rows[s : s + chunk]
            dev = self.pooled[r][:, pick].astype(np.float64) - mean
            var = var + np.einsum("n,nld->ld", w[s : s + chunk],
                                  self.var[r][:, pick].astype(np.float64) + dev * dev)
        std = np.sqrt(var / total)
        return mean.astype(np.float32), np.maximum(std, 1e-5).astype(np.float32)
