"""Simulated results folders: real run records with predictions drawn from a known model.

The statistics are tested (and benchmarked) on results whose truth is known: a corpus of speakers
and utterances with a shared per-speaker and per-utterance difficulty, and systems whose chance of
being right is ``sigmoid(skill − difficulty + system noise + seed noise)``. Two systems with equal
``skill`` are the same in distribution; a higher ``skill`` plants a real difference. Records are
written through :meth:`serbench.store.Store.write`, exactly as the runner writes them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from . import __version__
from .budgets import PRESETS
from .metrics import compute_metrics
from .specs import Budget
from .store import Store, test_set_hash

LABELS = ("ang", "hap", "neu", "sad")


@dataclass(frozen=True)
class Corpus:
    """Simulated test utterances: every speaker's utterances belong to one fold."""

    labels: tuple[str, ...]
    keys: np.ndarray
    speakers: np.ndarray
    y_true: np.ndarray
    fold: np.ndarray
    difficulty: np.ndarray

    @property
    def n_folds(self) -> int:
        return int(self.fold.max()) + 1


def make_corpus(
    rng: np.random.Generator, n_speakers: int = 10, per_speaker: int | Sequence[int] = 40,
    n_folds: int | None = None, labels: Sequence[str] = LABELS, speaker_sd: float = 0.6,
    utterance_sd: float = 1.0,
) -> Corpus:
    """Speakers split round-robin into ``n_folds`` (default: one per speaker, i.e. LOSO)."""
    counts = np.broadcast_to(np.asarray(per_speaker), (n_speakers,))
    spk = np.repeat(np.arange(n_speakers), counts)
    n = spk.size
    keys = np.array([f"spk{s:03d}_utt{i:05d}" for i, s in enumerate(spk)])
    n_folds = n_folds or n_speakers
    difficulty = rng.normal(0, speaker_sd, n_speakers)[spk] + rng.normal(0, utterance_sd, n)
    return Corpus(tuple(labels), keys, np.array([f"spk{s:03d}" for s in spk]),
                  rng.integers(0, len(labels), n), spk % n_folds, difficulty)


def simulate_predictions(
    corpus: Corpus, skill: float, n_seeds: int, rng: np.random.Generator,
    system_sd: float = 0.5, seed_sd: float = 0.5,
) -> np.ndarray:
    """``(n_seeds, N)`` predicted class indices; a wrong answer is a uniform other class."""
    n, k = corpus.y_true.size, len(corpus.labels)
    system = rng.normal(0, system_sd, n)  # this system's own hard utterances, shared by its seeds
    logit = skill - corpus.difficulty + system + rng.normal(0, seed_sd, (n_seeds, n))
    right = rng.random((n_seeds, n)) < 1 / (1 + np.exp(-logit))
    wrong = (corpus.y_true + rng.integers(1, k, (n_seeds, n))) % k
    return np.where(right, corpus.y_true, wrong)


def write_condition(
    store: Store, corpus: Corpus, predictions: np.ndarray, method: str, upstream: str,
    dataset: str = "simulated", protocol: str = "loso_speaker",
    budget: Budget = PRESETS["smoke"], options: Mapping[str, Any] | None = None,
    seeds: Sequence[int] | None = None, created: str = "2026-01-01T00:00:00+00:00",
) -> list[str]:
    """Store one run per (fold, seed) of ``predictions``; returns their run ids."""
    options = dict(options or {})
    seeds = list(seeds if seeds is not None else range(predictions.shape[0]))
    k = len(corpus.labels)
    ids = []
    for s_i, seed in enumerate(seeds):
        for fold in range(corpus.n_folds):
            idx = np.flatnonzero(corpus.fold == fold)
            spec = {"upstream": upstream, "method": method, "dataset": dataset,
                    "protocol": protocol, "fold": str(fold), "seed": int(seed),
                    "budget": budget.name, "options": options, "dataset_options": {}}
            run_id = hashlib.sha256(json.dumps([spec, budget.signature()], sort_keys=True)
                                    .encode()).hexdigest()[:16]
            y, p = corpus.y_true[idx], predictions[s_i, idx]
            scores = np.full((idx.size, k), 0.1 / (k - 1))
            scores[np.arange(idx.size), p] = 0.9
            preds = [{"key": str(corpus.keys[i]), "speaker": str(corpus.speakers[i]),
                      "label": corpus.labels[y[j]], "prediction": corpus.labels[p[j]],
                      "scores": [round(float(x), 4) for x in scores[j]]}
                     for j, i in enumerate(idx)]
            record = {
                "schema": 1, "run_id": run_id, "status": "ok", "error": None, "spec": spec,
                "options": options, "budget": {**asdict(budget), "signature": budget.signature()},
                "metrics": compute_metrics(y, p, corpus.labels), "labels": list(corpus.labels),
                "test_hash": test_set_hash(corpus.keys[idx].tolist()), "n_test": int(idx.size),
                "environment": {"serbench": __version__, "simulated": True}, "created": created,
            }
            store.write(record, preds)
            ids.append(run_id)
    return ids
