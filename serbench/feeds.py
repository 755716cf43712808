"""Batches of one fold: from the feature cache (frozen upstreams) or from audio (fine-tuning).

Feature normalisation happens here, before the method sees anything, so every method gets the
same inputs: ``none``, ``global`` (statistics of the training frames) or ``speaker`` (each
speaker's own frames, test speakers included: it uses no labels, the usual practice in SER).
"""

from __future__ import annotations

import random
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .batching import bucket_batches
from .features import FeatureEntry
from .specs import GENDERS, Batch, ConfigError, Utterance
from .training import Feed

NORMALIZE = ("none", "global", "speaker")


def _label_tensor(utts: Sequence[Utterance], label_index: Mapping[str, int]) -> Any:
    import torch

    return torch.tensor([label_index[u.label] for u in utts], dtype=torch.long)


def _gender_tensor(utts: Sequence[Utterance]) -> Any:
    import torch

    if all(u.gender is None for u in utts):
        return None
    return torch.tensor([GENDERS.index(u.gender) if u.gender in GENDERS else -1 for u in utts])


def _texts(utts: Sequence[Utterance]) -> list[str] | None:
    if all(u.text is None for u in utts):
        return None
    return [u.text or "" for u in utts]


class _Base(Feed):
    def __init__(
        self,
        splits: Mapping[str, Sequence[Utterance]],
        label_index: Mapping[str, int],
        batch_seconds: float,
    ) -> None:
        self.splits = splits
        self.label_index = label_index
        self.batch_seconds = batch_seconds
        train = splits["train"]
        self.batches_per_epoch = len(self._batches(train, seed=0))

    def _durations(self, utts: Sequence[Utterance]) -> list[float]:
        return [u.duration or 1.0 for u in utts]

    def _batches(self, utts: Sequence[Utterance], seed: int | None) -> list[list[int]]:
        return bucket_batches(self._durations(utts), self.batch_seconds, seed=seed)

    def _make(self, utts: Sequence[Utterance]) -> Batch:  # pragma: no cover - interface
        raise NotImplementedError

    def train(self, seed: int) -> Iterator[Batch]:
        utts = self.splits["train"]
        epoch = 0
        while True:
            for idx in self._batches(utts, seed=seed * 100003 + epoch):
                yield self._make([utts[i] for i in idx])
            epoch += 1

    def evaluate(self, split: str) -> Iterator[Batch]:
        utts = self.splits[split]
        for idx in self._batches(utts, seed=None):
            yield self._make([utts[i] for i in idx])

    def _finish(self, utts: Sequence[Utterance], batch: Batch) -> Batch:
        batch.audio_seconds = float(sum(u.duration or 0.0 for u in utts))
        return batch


class CachedFeed(_Base):
    """Frozen upstream: hidden states from a cache entry, normalised, per frame or pooled."""

    def __init__(
        self,
        entry: FeatureEntry,
        splits: Mapping[str, Sequence[Utterance]],
        label_index: Mapping[str, int],
        batch_seconds: float,
        pooled: bool,
        normalize: str,
    ) -> None:
        if normalize not in NORMALIZE:
            raise ConfigError(f"option normalize must be one of {', '.join(NORMALIZE)}, "
                              f"got {normalize!r}")
        self.entry = entry
        self.pooled = pooled
        self._stats = self._statistics(entry, splits, normalize)
        super().__init__(splits, label_index, batch_seconds)
        if pooled:
            self._pooled = {s: self._normalised_pooled(u) for s, u in splits.items()}

    @staticmethod
    def _statistics(entry: FeatureEntry, splits: Mapping[str, Sequence[Utterance]],
                    normalize: str) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
        if normalize == "none":
            return None
        if normalize == "global":
            mean, std = entry.moments([u.key for u in splits["train"]])
            return {"*": (mean, std)}
        everyone: dict[str, list[str]] = {}
        for utts in splits.values():
            for u in utts:
                everyone.setdefault(u.speaker, []).append(u.key)
        return {spk: entry.moments(keys) for spk, keys in everyone.items()}

    def _norm(self, x: np.ndarray, speaker: str) -> np.ndarray:
        if self._stats is None:
            return x
        mean, std = self._stats.get("*") or self._stats[speaker]
        return (x - mean) / std

    def _normalised_pooled(self, utts: Sequence[Utterance]) -> np.ndarray:
        rows = [self.entry.rows[u.key] for u in utts]
        x = self.entry.pooled[rows].astype(np.float32)
        if self._stats is not None:
            x = np.stack([self._norm(x[i], u.speaker) for i, u in enumerate(utts)])
        return x.astype(np.float32)

    def _batches(self, utts: Sequence[Utterance], seed: int | None) -> list[list[int]]:
        if not self.pooled:
            return super()._batches(utts, seed)
        # pooled inputs have no padding: random batches holding batch_seconds of audio each
        order = list(range(len(utts)))
        if seed is not None:
            random.Random(seed).shuffle(order)
        batches: list[list[int]] = []
        current: list[int] = []
        total = 0.0
        for i in order:
            d = utts[i].duration or 1.0
            if current and total + d > self.batch_seconds:
                batches.append(current)
                current, total = [], 0.0
            current.append(i)
            total += d
        if current:
            batches.append(current)
        return batches

    def train(self, seed: int) -> Iterator[Batch]:
        if not self.pooled:
            yield from super().train(seed)
            return
        yield from self._pooled_batches("train", seed)

    def evaluate(self, split: str) -> Iterator[Batch]:
        if not self.pooled:
            yield from super().evaluate(split)
            return
        yield from self._pooled_batches(split, None)

    def _pooled_batches(self, split: str, seed: int | None) -> Iterator[Batch]:
        import torch

        utts = self.splits[split]
        matrix = torch.from_numpy(self._pooled[split])  # (N, L, D)
        epoch = 0
        while True:
            for idx in self._batches(utts, None if seed is None else seed * 100003 + epoch):
                sel = [utts[i] for i in idx]
                x = matrix[idx]
                batch = Batch(
                    keys=[u.key for u in sel],
                    labels=_label_tensor(sel, self.label_index),
                    lengths=torch.ones(len(sel), dtype=torch.long),
                    speakers=[u.speaker for u in sel],
                    features=[x[:, layer : layer + 1, :] for layer in range(x.shape[1])],
                    genders=_gender_tensor(sel),
                    texts=_texts(sel),
                )
                yield self._finish(sel, batch)
            if seed is None:
                return
            epoch += 1

    def _make(self, utts: Sequence[Utterance]) -> Batch:
        import torch

        arrays = [self._norm(np.asarray(self.entry.frames(u.key), dtype=np.float32), u.speaker)
                  for u in utts]
        lengths = torch.tensor([a.shape[0] for a in arrays], dtype=torch.long)
        layers, dim = arrays[0].shape[1], arrays[0].shape[2]
        x = torch.zeros(len(arrays), int(lengths.max()), layers, dim)
        for i, a in enumerate(arrays):
            x[i, : a.shape[0]] = torch.from_numpy(a)
        batch = Batch(
            keys=[u.key for u in utts],
            labels=_label_tensor(utts, self.label_index),
            lengths=lengths,
            speakers=[u.speaker for u in utts],
            features=[x[:, :, layer, :] for layer in range(layers)],
            genders=_gender_tensor(utts),
            texts=_texts(utts),
        )
        return self._finish(utts, batch)


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

    def _make(self, utts: Sequence[Utterance]) -> Batch:
        import torch

        arrays = [self.waves[u.key] for u in utts]
        lengths = torch.tensor([len(a) for a in arrays], dtype=torch.long)
        x = torch.zeros(len(arrays), int(lengths.max()))
        for i, a in enumerate(arrays):
            x[i, : len(a)] = torch.from_numpy(a)
        batch = Batch(
            keys=[u.key for u in utts],
            labels=_label_tensor(utts, self.label_index),
            lengths=lengths,
            speakers=[u.speaker for u in utts],
            waveforms=x,
            genders=_gender_tensor(utts),
            texts=_texts(utts),
        )
        return self._finish(utts, batch)
