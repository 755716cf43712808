"""Simulated results folders: real run records with predictions drawn from a known model.

The statistics are tested (and benchmarked) on results whose truth is known: a corpus of speakers
and utterances with a shared per-speaker and per-utterance difficulty, and systems whose chance of
being right is ``sigmoid(skill − difficulty + system noise + model shift + seed noise)``: the
model shift (``model_sd``) is one draw per trained model, i.e. per (fold, seed), shared by every
test speaker of that fold, as a luckily good training run is. Two systems with equal ``skill`` are
the same in distribution; a higher ``skill`` plants a real difference. Records are written through
:meth:`serbench.store.Store.write`, exactly as the runner writes them; :func:`pooled` gives the
same predictions as the statistics hold them, without a store, for calibration at scale.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from serbench import __version__
from serbench.judge.conditions import Condition
from serbench.judge.metrics import compute_metrics
from serbench.judge.stats import Pooled, pooled_arrays
from serbench.run.budgets import PRESETS
from serbench.run.record import RunRecord
from serbench.specs import Budget
from serbench.store import Store, test_set_hash

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
    system_sd: float = 0.5, seed_sd: float = 0.5, model_sd: float = 0.0,
) -> np.ndarray:
    """``(n_seeds, N)`` predicted class indices; a wrong answer is a uniform other class."""
    n, k = corpus.y_true.size, len(corpus.labels)
    system = rng.normal(0, system_sd, n)  # this system's own hard utterances, shared by its seeds
    logit = skill - corpus.difficulty + system + rng.normal(0, seed_sd, (n_seeds, n))
    if model_sd:  # one skill shift per trained model (fold, seed); not drawn when 0
        logit += rng.normal(0, model_sd, (n_seeds, corpus.n_folds))[:, corpus.fold]
    right = rng.random((n_seeds, n)) < 1 / (1 + np.exp(-logit))
    wrong = (corpus.y_true + rng.integers(1, k, (n_seeds, n))) % k
    return np.where(right, corpus.y_true, wrong)


def pooled(corpus: Corpus, predictions: np.ndarray) -> Pooled:
    """``predictions`` (seeds × N) pooled as :mod:`serbench.judge.conditions` pools stored runs: one
    trained model per (seed, fold)."""
    n_seeds, n = predictions.shape
    spk_names, spk = np.unique(corpus.speakers, return_inverse=True)
    utt = np.tile(np.arange(n), n_seeds)
    models = (np.arange(n_seeds)[:, None] * corpus.n_folds + corpus.fold[None, :]).ravel()
    model_fold = np.tile(np.arange(corpus.n_folds), n_seeds)
    return pooled_arrays(corpus.labels, corpus.keys, utt, spk, tuple(str(x) for x in spk_names),
                         corpus.y_true, predictions.ravel(), models, model_fold)


def condition(name: str, corpus: Corpus, predictions: np.ndarray, **facts: Any) -> Condition:
    """A condition as the leaderboard holds one read from a store (index rows of its runs, one per
    (fold, seed), and pooled predictions), without a store; ``facts`` go into every run row."""
    runs = []
    for seed in range(predictions.shape[0]):
        for fold in range(corpus.n_folds):
            idx = corpus.fold == fold
            m = compute_metrics(corpus.y_true[idx], predictions[seed, idx], corpus.labels)
            runs.append({"run_id": f"{name}-{fold}-{seed}", "fold": str(fold), "seed": seed,
                         "test_hash": f"fold{fold}", "uar": m["uar"], "war": m["war"],
                         "macro_f1": m["macro_f1"], **facts})
    return Condition(Store("unused"), "simulated", "loso", {}, "smoke", "sig", "up", name, {},
                     runs, loaded=pooled(corpus, predictions))


def write_condition(
    store: Store, corpus: Corpus, predictions: np.ndarray, method: str, upstream: str,
    dataset: str = "simulated", protocol: str = "loso_speaker",
    budget: Budget = PRESETS["smoke"], options: Mapping[str, Any] | None = None,
    seeds: Sequence[int] | None = None, created: str = "2026-01-01T00:00:00+00:00",
    extra: Mapping[str, Any] | None = None,
) -> list[str]:
    """Store one run per (fold, seed) of ``predictions``; returns their run ids. ``extra`` is
    merged into every record (and into the run ids): other versions, usage, tuned options..."""
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
            ident = [spec, budget.signature(), *([extra] if extra else [])]
            run_id = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
            y, p = corpus.y_true[idx], predictions[s_i, idx]
            scores = np.full((idx.size, k), 0.1 / (k - 1))
            scores[np.arange(idx.size), p] = 0.9
            preds = [{"key": str(corpus.keys[i]), "speaker": str(corpus.speakers[i]),
                      "label": corpus.labels[y[j]], "prediction": corpus.labels[p[j]],
                      "scores": [round(float(x), 4) for x in scores[j]]}
                     for j, i in enumerate(idx)]
            record = RunRecord(
                run_id=run_id, status="ok", spec=spec, options=options,
                budget={**asdict(budget), "signature": budget.signature()},
                metrics=compute_metrics(y, p, corpus.labels), labels=list(corpus.labels),
                test_hash=test_set_hash(corpus.keys[idx].tolist()), n_test=int(idx.size),
                environment={"serbench": __version__, "simulated": True}, created=created,
                extra=dict(extra or {}),
            )
            store.write(record.to_json(), preds)
            ids.append(run_id)
    return ids


# ------------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Design:
    """A test-set layout the calibration covers: speakers, utterances each, folds (``None``:
    one fold per speaker, LOSO)."""

    name: str
    n_speakers: int
    per_speaker: int
    n_folds: int | None

    def describe(self) -> str:
        folds = self.n_folds or self.n_speakers
        return (f"{self.n_speakers} speakers × {self.per_speaker} utterances, {folds} fold"
                f"{'s' if folds > 1 else ''} ({self.n_speakers // folds} test speaker"
                f"{'s' if self.n_speakers // folds > 1 else ''} per trained model)")


DESIGNS = (Design("emodb-like", 10, 50, None), Design("iemocap-like", 10, 60, 5),
           Design("split-60", 60, 20, 1))


def verdict_p(
    design: Design, shift: float, model_sd: float, n_seeds: int, n_sims: int, seed: int = 0,
    n_boot: int = 200, metric: str = "uar", models: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The verdict's p-values (paired speaker bootstrap with model variance, B against A) and the
    estimated Δ of ``n_sims`` simulated pairs of conditions, system B's skill being A's plus
    ``shift``. NaN p: no verdict possible. ``models=False`` leaves the models' variance out (the
    speaker bootstrap alone, for contrast)."""
    from serbench.judge.stats import paired_bootstrap

    ps, deltas = np.empty(n_sims), np.empty(n_sims)
    for i in range(n_sims):
        rng = np.random.default_rng([seed, i])
        corpus = make_corpus(rng, design.n_speakers, design.per_speaker, design.n_folds)
        a, b = (pooled(corpus, simulate_predictions(corpus, skill, n_seeds, rng,
                                                    model_sd=model_sd))
                for skill in (0.5, 0.5 + shift))
        if not models:  # no model variance: drop the trained models from the pooled rows
            a, b = (replace(x, model_conf=x.model_conf[:0], model_fold=x.model_fold[:0])
                    for x in (a, b))
        r = paired_bootstrap(b, a, metric, n_boot=n_boot, seed=i, test_id="")
        ps[i], deltas[i] = r.p, r.delta
    return ps, deltas
