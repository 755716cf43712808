"""Batches of one fold: from the feature cache (frozen upstreams) or from audio (fine-tuning).

Every feed cuts the same length-bucketed batches (by audio seconds, ``bucket_batches``) in the
same order for a given seed, so methods under one budget see the same utterances per step, and
a model that is linear up to its pooling trains identically on pooled or on frame inputs.

Feature normalisation happens here, before the method sees anything, so every method gets the
same inputs: ``none``, ``global`` (statistics of the training frames) or ``speaker`` (each
speaker's own frames, test speakers included: it uses no labels, the usual practice in SER, but
it is transductive: the model sees each test speaker's unlabelled test audio; runs record it).
A speaker known from a single utterance (MSP-Podcast's ``Unknown`` speakers become one
pseudo-speaker per file) has no statistics of its own: its own would turn its pooled features
into exactly zero, so it takes the training set's (``global``) statistics.
Both are per (layer, dim) affine maps of each frame, so normalising an utterance's mean frame is
the same as averaging its normalised frames: the pooled path stays exact.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from serbench.data.batching import bucket_batches
from serbench.data.features import FeatureEntry
from serbench.options import NORMALIZE
from serbench.specs import GENDERS, Batch, ConfigError, Utterance

# pooled inputs up to this size are normalised once, in memory; larger ones (a large upstream's
# every layer on MSP-Podcast: 15 GB) are read and normalised batch by batch
PRENORMALISED_BYTES = 1 << 30


class _Split:
    """One split's per-utterance columns, built once so a batch is a few index operations."""

    def __init__(self, utts: Sequence[Utterance], label_index: Mapping[str, int]) -> None:
        import torch

        self.utts = list(utts)
        self.durations = [u.duration or 1.0 for u in self.utts]
        self.labels = torch.tensor([label_index[u.label] for u in self.utts], dtype=torch.long)
        self.genders = None
        if any(u.gender is not None for u in self.utts):
            self.genders = torch.tensor([GENDERS.index(u.gender) if u.gender in GENDERS else -1
                                         for u in self.utts])
        self.texts = None
        if any(u.text is not None for u in self.utts):
            self.texts = [u.text or "" for u in self.utts]

    def batch(self, idx: Sequence[int], rows: Any, lengths: Any, **inputs: Any) -> Batch:
        """The batch of positions ``idx`` (``rows``: the same as a tensor) with its inputs."""
        return Batch(
            keys=[self.utts[i].key for i in idx],
            labels=self.labels.index_select(0, rows),
            lengths=lengths,
            speakers=[self.utts[i].speaker for i in idx],
            genders=None if self.genders is None else self.genders[rows],
            texts=None if self.texts is None else [self.texts[i] for i in idx],
            audio_seconds=float(sum(self.durations[i] for i in idx)),
            **inputs,
        )


class Feed:
    """Batches of one fold. ``train`` cycles epochs forever; ``evaluate`` walks a split once."""

    def train(self, seed: int) -> Iterator[Batch]:  # pragma: no cover - interface
        raise NotImplementedError

    def evaluate(self, split: str) -> Iterator[Batch]:  # pragma: no cover - interface
        raise NotImplementedError


class _Base(Feed):
    def __init__(
        self,
        splits: Mapping[str, Sequence[Utterance]],
        label_index: Mapping[str, int],
        batch_seconds: float,
    ) -> None:
        self.splits = {name: _Split(utts, label_index) for name, utts in splits.items()}
        self.label_index = label_index
        self.batch_seconds = batch_seconds
        self.batches_per_epoch = len(self.batches("train", seed=0))
        self._in_order: dict[str, list[list[int]]] = {}  # evaluation batches, cut once

    def batches(self, split: str, seed: int | None) -> list[list[int]]:
        """Index lists into ``split``: shuffled among similar lengths with a seed, else sorted."""
        return bucket_batches(self.splits[split].durations, self.batch_seconds, seed=seed)

    def make(self, split: str, idx: Sequence[int]) -> Batch:  # pragma: no cover - interface
        raise NotImplementedError

    def train(self, seed: int) -> Iterator[Batch]:
        epoch = 0
        while True:
            for idx in self.batches("train", seed=seed * 100003 + epoch):
                yield self.make("train", idx)
            epoch += 1

    def evaluate(self, split: str) -> Iterator[Batch]:
        if split not in self._in_order:
            self._in_order[split] = self.batches(split, seed=None)
        for idx in self._in_order[split]:
            yield self.make(split, idx)


class CachedFeed(_Base):
    """Frozen upstream: hidden states from a cache entry, normalised, per frame or pooled.

    Pooled, a batch indexes one ``(N, L, D)`` float32 matrix of per-layer means. ``layers``: the
    layers the method reads (``MethodSpec.layers_read``), the only ones its batches hold
    (``Batch.layers``); None: every layer.
    """

    def __init__(
        self,
        entry: FeatureEntry,
        splits: Mapping[str, Sequence[Utterance]],
        label_index: Mapping[str, int],
        batch_seconds: float,
        pooled: bool,
        normalize: str,
        layers: Sequence[int] | None = None,
    ) -> None:
        import torch

        if normalize not in NORMALIZE:
            raise ConfigError(f"option normalize must be one of {', '.join(NORMALIZE)}, "
                              f"got {normalize!r}")
        self.entry = entry
        self.pooled = pooled
        self.normalize = normalize
        every = tuple(range(entry.num_layers))
        self.layers = every if layers is None else tuple(layers)
        # what batches say they hold: None when it is every layer
        self._held = None if self.layers == every else self.layers
        super().__init__(splits, label_index, batch_seconds)
        self._stats = {k: (torch.from_numpy(m), torch.from_numpy(s)) for k, (m, s)
                       in self._statistics(entry, splits, normalize, self._held).items()}
        self._rows = {name: np.array([entry.rows[u.key] for u in s.utts], dtype=np.int64)
                      for name, s in self.splits.items()}
        self._affine_tables()
        self._source = self._pooled_source() if pooled else None
        self._where = {name: torch.from_numpy(rows) for name, rows in self._rows.items()}

    @staticmethod
    def _statistics(entry: FeatureEntry, splits: Mapping[str, Sequence[Utterance]],
                    normalize: str, layers: Sequence[int] | None
                    ) -> dict[str | None, tuple[np.ndarray, np.ndarray]]:
        """Per-speaker statistics, and the training set's under ``None`` (of ``layers``)."""
        if normalize == "none":
            return {}
        stats: dict[str | None, tuple[np.ndarray, np.ndarray]] = {
            None: entry.moments([u.key for u in splits["train"]], layers)}
        if normalize == "speaker":
            everyone: dict[str, list[str]] = {}
            for utts in splits.values():
                for u in utts:
                    everyone.setdefault(u.speaker, []).append(u.key)
            stats.update({spk: entry.moments(keys, layers) for spk, keys in everyone.items()
                          if len(keys) > 1})
        return stats

    def _affine(self, speaker: str) -> tuple[Any, Any] | None:
        if not self._stats:
            return None
        return self._stats.get(speaker) or self._stats[None]

    def _pooled_source(self) -> Any:
        """The pooled rows batches index: the entry's memory map itself (pages every process of a
        sweep shares) when nothing is normalised and every layer is read; else a normalised copy
        of the layers read, when it fits in :data:`PRENORMALISED_BYTES`; else None (each batch is
        read and normalised on its own, so memory stays at a batch whatever the corpus)."""
        import torch

        pooled = np.asarray(self.entry.pooled)
        if self._held is None and not self._stats:
            return torch.from_numpy(pooled)
        size = pooled.shape[0] * len(self.layers) * pooled.shape[2] * 4
        if size > PRENORMALISED_BYTES:
            return None
        source = self._rows_of(slice(None))
        rows = torch.from_numpy(np.concatenate(list(self._rows.values())))
        if self._stats:  # rows no split reads stay as they are
            source[rows] = self._normalised(source[rows], rows)
        return source

    def _rows_of(self, rows: Any) -> Any:
        """The pooled rows ``rows`` of the layers read, as a new float32 tensor."""
        import torch

        x = self.entry.pooled[rows]
        return torch.from_numpy(np.array(x if self._held is None else x[:, list(self._held)]))

    def _normalised(self, x: Any, rows: Any) -> Any:
        """``x`` (pooled rows ``rows`` of the entry), normalised in place by their speakers'
        statistics."""
        if not self._stats:
            return x
        which = self._affine_index.index_select(0, rows)
        return x.sub_(self._means.index_select(0, which)).div_(self._stds.index_select(0, which))

    def _affine_tables(self) -> None:
        """Stacked statistics and, per entry row, which of them its speaker takes."""
        import torch

        if not self._stats:
            return
        names = list(self._stats)
        self._means = torch.stack([self._stats[n][0] for n in names])
        self._stds = torch.stack([self._stats[n][1] for n in names])
        self._affine_index = torch.zeros(len(self.entry.rows), dtype=torch.long)
        position = {n: i for i, n in enumerate(names)}  # the training set's is 0
        for name, part in self.splits.items():
            at = [position.get(u.speaker, 0) for u in part.utts]
            self._affine_index[torch.from_numpy(self._rows[name])] = torch.tensor(
                at, dtype=torch.long)

    def make(self, split: str, idx: Sequence[int]) -> Batch:
        """The batch of ``split``'s utterances at positions ``idx``."""
        import torch

        part = self.splits[split]
        rows = torch.as_tensor(idx, dtype=torch.long)
        if self.pooled:
            at = self._where[split].index_select(0, rows)
            if self._source is not None:
                x = self._source.index_select(0, at)
            else:
                x = self._normalised(self._rows_of(at.numpy()), at)
            x = x.unsqueeze(2)  # (B, L, 1, D)
            return part.batch(idx, rows, torch.ones(len(idx), dtype=torch.long), stacked=x,
                              layers=self._held)
        keys = [part.utts[i].key for i in idx]
        lengths = torch.tensor([self.entry.n_frames(k) for k in keys], dtype=torch.long)
        x = torch.zeros(len(idx), len(self.layers), int(lengths.max()), self.entry.dim)
        for j, (i, key) in enumerate(zip(idx, keys, strict=True)):
            n = int(lengths[j])
            for at, layer in enumerate(self.layers):  # (n, D) float16 views of the cache
                x[j, at, :n].copy_(torch.from_numpy(self.entry.frames_of(key, layer)))
            affine = self._affine(part.utts[i].speaker)
            if affine is not None:
                x[j, :, :n].sub_(affine[0][:, None]).div_(affine[1][:, None])
        return part.batch(idx, rows, lengths, stacked=x, layers=self._held)


class AudioFeed(_Base):
    """Fine-tuned upstream: padded waveforms, decoded once per run and kept in memory."""

    def __init__(
        self,
        waves: Mapping[str, np.ndarray],
        splits: Mapping[str, Sequence[Utterance]],
        label_index: Mapping[str, int],
        batch_seconds: float,
    ) -> None:
        self.waves = waves
        super().__init__(splits, label_index, batch_seconds)

    def make(self, split: str, idx: Sequence[int]) -> Batch:
        import torch

        part = self.splits[split]
        rows = torch.as_tensor(idx, dtype=torch.long)
        arrays = [self.waves[part.utts[i].key] for i in idx]
        lengths = torch.tensor([len(a) for a in arrays], dtype=torch.long)
        x = torch.zeros(len(arrays), int(lengths.max()))
        for j, a in enumerate(arrays):
            x[j, : len(a)] = torch.from_numpy(a)
        return part.batch(idx, rows, lengths, waveforms=x)
