"""Uncertainty and paired tests over pooled test predictions.

A condition's runs (folds × seeds) are pooled into one row per test utterance
(:class:`Pooled`): for each utterance the fraction of its runs that predicted each class. Under a
leave-speakers-out protocol every seed's folds together cover the corpus once, so each utterance
is predicted once per seed and its row is the average over seeds; the UAR (or WAR) of the pooled
confusion equals the mean over seeds of each seed's pooled UAR, and macro-F1 is taken from the
seed-averaged confusion.

**Speaker bootstrap.** Utterances of one speaker are not independent, so the unit of resampling
is the speaker: a replicate draws speakers with replacement and takes *all* their utterances with
*all* their seeds' predictions (their rows of :class:`Pooled`). Replicates are a matrix ``W``
(replicates × speakers) of draw counts, and every replicate's confusion matrix is one product
``W @ C`` with the per-speaker confusions ``C``: no Python loop over replicates or conditions.
``W`` is drawn from the seed and the test set's hash, so two conditions on the same test set share
it (the bootstrap is paired) and a condition's CI does not depend on what else is in the table.
A condition's 95 % CI is the *expanded* percentile interval of its replicates (Hesterberg 2015),
which widens the plain one for the few speakers SER corpora have.

**Trained models.** Speakers tested by one trained model (the speakers of one fold, for each
seed) are not independent: a luckily good model is good on all of them, which the speaker
bootstrap cannot see. :func:`model_spread` estimates that covariance from the seeds of each fold
and adds it to the bootstrap's variance (zero under LOSO, one speaker per fold). With one seed on
a fold of several speakers it cannot be estimated: no p-value and no CI are given then.

**Paired tests** of two conditions A and B on the same test utterances:

- bootstrap ΔUAR: ``Δ̂ / SE`` with ``SE²`` the variance of ``metric(A) − metric(B)`` over shared
  replicates (with the ``n / (n − 1)`` widening) plus both conditions' model terms, referred to
  Student's t with Satterthwaite's degrees of freedom; the CI is ``Δ̂ ± t · SE``, so p < α exactly
  when it excludes 0. This test decides verdicts and marks. (The plain percentile interval is too
  narrow with the 10 speakers of EmoDB or IEMOCAP: in simulation it rejected a true null 9–15 %
  of the time at α = 0.05; this form stays near 5 %.)
- McNemar's exact test on per-utterance correctness, an utterance counting as correct when more
  than half of its seeds got it right (seeds of one system are not independent trials, so they
  are not counted as separate pairs; exactly half counts as wrong, for both systems alike). It
  treats utterances as independent, so it is shown as descriptive only, never in a verdict;
- Wilcoxon signed-rank over the runs matched by (fold, seed), exact (ties included) up to 50
  pairs. The seeds of one fold share its test speakers, so they are not independent pairs: each
  fold's matched seeds are averaged and the folds are paired (with seeds as pairs, a true null
  was rejected 9.5 % of the time at α = 0.05 in simulation). With a single fold (an official
  split) the seeds are paired, and the test then speaks only to training-seed variation. With
  ``n`` pairs its smallest p is ``2 / 2^n`` (:attr:`Wilcoxon.smallest_p`): 0.0625 for 5 folds;
- Holm's step-down correction over every pair of a table (:func:`holm`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from serbench.judge.metrics import metric_from_confusion
from serbench.specs import ConfigError

N_BOOT = 1000
ALPHA = 0.05


class PairingError(ConfigError):
    """Two conditions cannot be compared pairwise (their test sets differ)."""


@dataclass(frozen=True)
class Pooled:
    """One condition's test predictions pooled over folds × seeds; one row per test utterance,
    plus every trained model's (run's) confusion per speaker, which the model variance needs."""

    labels: tuple[str, ...]
    keys: np.ndarray            # (N,) sorted utterance keys
    speakers: np.ndarray        # (N,) index into speaker_names
    speaker_names: tuple[str, ...]
    y_true: np.ndarray          # (N,) class index
    votes: np.ndarray           # (N, K) share of the utterance's runs that predicted each class
    model_fold: np.ndarray      # (M,) fold index of each trained model (run)
    model_conf: np.ndarray      # (M, S, K, K) each model's confusion counts per speaker

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    def correct(self) -> np.ndarray:
        """Share of the utterance's runs that were right, ``(N,)``."""
        return self.votes[np.arange(len(self.y_true)), self.y_true]

    def speaker_confusions(self) -> np.ndarray:
        """``(S, K, K)`` confusion counts per speaker (rows true), seeds averaged."""
        k, s = self.n_classes, len(self.speaker_names)
        cell = self.speakers * k + self.y_true
        cols = [np.bincount(cell, weights=self.votes[:, j], minlength=s * k) for j in range(k)]
        return np.stack(cols, axis=-1).reshape(s, k, k)

    def confusion(self) -> np.ndarray:
        return self.speaker_confusions().sum(axis=0)

    def metric(self, metric: str) -> float:
        return float(metric_from_confusion(self.confusion(), metric))


def pool(
    keys: Sequence[str], speakers: Sequence[str], y_true: Sequence[int], y_pred: Sequence[int],
    labels: Sequence[str], models: Sequence[int] | None = None,
    model_folds: Sequence[int] | None = None,
) -> Pooled:
    """Pool the concatenated predictions of a condition's runs (one entry per run × utterance).

    ``models`` gives each entry's run (trained model) and ``model_folds`` each run's fold; without
    them the i-th prediction of an utterance is taken to come from run i, all runs of one fold.
    """
    keys_a = np.asarray(keys)
    if keys_a.size == 0:
        raise ValueError("no test predictions to pool")
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    uniq, first, inv = np.unique(keys_a, return_index=True, return_inverse=True)
    if not np.array_equal(t, t[first][inv]):
        bad = str(keys_a[np.flatnonzero(t != t[first][inv])[0]])
        raise ValueError(f"utterance {bad!r} has different true labels in different runs")
    spk_names, spk = np.unique(np.asarray(speakers)[first], return_inverse=True)
    if models is None:
        order = np.argsort(inv, kind="stable")
        starts = np.searchsorted(inv[order], inv[order])
        models_a = np.empty_like(inv)
        models_a[order] = np.arange(inv.size) - starts
        model_folds = np.zeros(int(models_a.max()) + 1, dtype=np.int64)
    else:
        models_a = np.asarray(models, dtype=np.int64)
    return pooled_arrays(tuple(labels), uniq, inv, spk, tuple(str(s) for s in spk_names),
                         t[first], p, models_a, np.asarray(model_folds, dtype=np.int64))


def pooled_arrays(
    labels: tuple[str, ...], keys: np.ndarray, utt: np.ndarray, speakers: np.ndarray,
    speaker_names: tuple[str, ...], y_true: np.ndarray, y_pred: np.ndarray, models: np.ndarray,
    model_fold: np.ndarray,
) -> Pooled:
    """:class:`Pooled` from integer arrays: ``utt``, ``y_pred`` and ``models`` per prediction,
    ``speakers`` and ``y_true`` per utterance (the simulations call this directly)."""
    k, n, s, m = len(labels), len(keys), len(speaker_names), len(model_fold)
    votes = np.bincount(utt * k + y_pred, minlength=n * k).reshape(n, k).astype(float)
    votes /= votes.sum(axis=1, keepdims=True)
    cell = ((models * s + speakers[utt]) * k + y_true[utt]) * k + y_pred
    conf = np.bincount(cell, minlength=m * s * k * k).reshape(m, s, k, k).astype(float)
    return Pooled(labels, keys, speakers, speaker_names, y_true, votes, model_fold, conf)


# ------------------------------------------------------------------------------- model variance


def metric_gradient(conf: np.ndarray, metric: str) -> np.ndarray:
    """``(K, K)`` derivative of the metric with respect to each confusion count: the metric's
    linear contribution of one prediction (exact for WAR and UAR, first order for macro-F1)."""
    k = conf.shape[0]
    eye, tp, rows, cols = np.eye(k), np.diag(conf), conf.sum(axis=1), conf.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "war":
            return (eye - tp.sum() / conf.sum()) / conf.sum()
        if metric == "uar":
            present = rows > 0
            g = (eye - (tp / rows)[:, None]) / (present.sum() * rows[:, None])
            return np.where(present[:, None], g, 0.0)
        both = rows + cols
        present = both > 0
        lead = np.where(present, 2 / both, 0.0)
        shared = np.where(present, 2 * tp / both**2, 0.0)
        return (eye * lead[:, None] - shared[:, None] - shared[None, :]) / present.sum()


@dataclass(frozen=True)
class Spread:
    """What the trained models add to the speaker bootstrap's variance of a pooled metric.

    The bootstrap treats test speakers as independent; speakers tested by the same trained model
    are not (a lucky model is lucky on all of them). ``var`` is the covariance between them that
    the models induce, estimated from how the seeds of each fold co-vary across its speakers (it
    may come out negative; the total is floored at 0 where it is used); ``df_terms`` is its share
    of the Satterthwaite degrees of freedom; ``missing`` says why it cannot be estimated (one
    seed for a fold that several speakers share).
    """

    var: float = 0.0
    df_terms: float = 0.0
    missing: str | None = None

    def __add__(self, other: Spread) -> Spread:
        return Spread(self.var + other.var, self.df_terms + other.df_terms,
                      self.missing or other.missing)


def model_spread(p: Pooled, metric: str) -> Spread:
    """Model-induced covariance between speakers of one fold, summed over folds.

    With the linear contribution ``y[m, s]`` of model ``m`` on speaker ``s``, fold ``f``'s share of
    the pooled metric is the mean over its ``R`` seeds of ``T[m] = Σ_s y[m, s]``; given the
    speakers, its variance is ``var(T) / R``, of which the bootstrap already sees
    ``Σ_s var(y[·, s]) / R``. The difference is the cross-speaker covariance (zero in expectation
    when models do not matter, and exactly zero with one speaker per fold, as under LOSO). Its
    degrees of freedom are counted from the whole between-seed variance ``var(T) / R`` (R − 1 of
    them): counting them from the difference alone called a small estimate precise, and the CIs
    of one 60-speaker split then covered 91 % instead of 93 %.
    """
    y = np.einsum("mskj,kj->ms", p.model_conf, metric_gradient(p.confusion(), metric))
    seen = p.model_conf.sum(axis=(2, 3)) > 0
    out = Spread()
    for fold in np.unique(p.model_fold):
        ms = p.model_fold == fold
        speakers = seen[ms].any(axis=0)
        n_seeds = int(ms.sum())
        if speakers.sum() < 2:
            continue
        if n_seeds < 2:
            return Spread(missing=f"1 seed per fold with {int(speakers.sum())} test speakers "
                                  "sharing each trained model")
        yf = y[ms][:, speakers]
        between = np.var(yf.sum(axis=1), ddof=1) / n_seeds
        cross = between - np.var(yf, axis=0, ddof=1).sum() / n_seeds
        out = out + Spread(cross, between**2 / (n_seeds - 1))
    return out


# ------------------------------------------------------------------------------- bootstrap


def bootstrap_weights(n_speakers: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n_speakers)`` draw counts of speakers resampled with replacement."""
    draws = rng.integers(0, n_speakers, size=(n_boot, n_speakers))
    flat = draws + n_speakers * np.arange(n_boot)[:, None]
    return np.bincount(flat.ravel(), minlength=n_boot * n_speakers).reshape(n_boot, n_speakers)


def rng_for(seed: int, test_id: str) -> np.random.Generator:
    """The generator of one test set's replicates: same seed and test set, same draws."""
    return np.random.default_rng([seed, int(test_id[:15], 16) if test_id else 0])


def replicate_metric(speaker_conf: np.ndarray, weights: np.ndarray, metric: str) -> np.ndarray:
    """The metric of every bootstrap replicate, ``(n_boot,)``."""
    s, k, _ = speaker_conf.shape
    boot = (weights @ speaker_conf.reshape(s, k * k)).reshape(-1, k, k)
    return np.asarray(metric_from_confusion(boot, metric))


def _widen(n_clusters: int) -> float:
    """``sqrt(n / (n − 1))``: the bootstrap's variance is short by ``(n − 1) / n``."""
    return float(np.sqrt(n_clusters / (n_clusters - 1)))


def _total(boot_var: float, n_clusters: int, spread: Spread) -> tuple[float, float]:
    """Variance (speaker bootstrap plus models) and its Satterthwaite degrees of freedom."""
    extra = max(spread.var, 0.0)
    total = boot_var + extra
    denom = boot_var**2 / (n_clusters - 1) + spread.df_terms
    df = total**2 / denom if denom > 0 and extra > 0 else float(n_clusters - 1)
    return total, min(max(df, 1.0), float(n_clusters - 1))


def percentile_ci(
    samples: np.ndarray, n_clusters: int, level: float = 0.95, spread: Spread = Spread(),
    estimate: float | None = None,
) -> tuple[float, float]:
    """Expanded percentile interval (Hesterberg 2015): with few speakers the plain percentile
    interval is too narrow, so its tail share is taken at ``Φ(−sqrt(n/(n−1)) · t_{n−1})``. The
    models' variance (``spread``) widens it about ``estimate`` to ``t_df · SE_total`` (``df`` by
    Satterthwaite; scaling, rather than reading further-out percentiles, because a few degrees of
    freedom would ask for tails the replicates do not reach); when it cannot be estimated there
    is no interval."""
    from scipy.stats import norm, t

    finite = samples[np.isfinite(samples)]
    if finite.size < 2 or n_clusters < 2 or spread.missing:
        return (float("nan"), float("nan"))
    q = (1 + level) / 2
    tail = norm.cdf(-_widen(n_clusters) * t.ppf(q, n_clusters - 1))
    lo, hi = np.quantile(finite, [tail, 1 - tail])
    boot_var = _widen(n_clusters) ** 2 * float(np.var(finite, ddof=1))
    total, df = _total(boot_var, n_clusters, spread)
    if total > boot_var > 0 and estimate is not None:
        # widen about the estimate to t_df·SE_total; the replicates keep the interval's shape
        k = t.ppf(q, df) * np.sqrt(total) / (t.ppf(q, n_clusters - 1) * np.sqrt(boot_var))
        lo, hi = estimate + k * (lo - estimate), estimate + k * (hi - estimate)
    return (float(lo), float(hi))


@dataclass(frozen=True)
class PairedBootstrap:
    delta: float
    ci: tuple[float, float]
    p: float
    df: float = float("nan")
    missing: str | None = None  # why there is no p (then ``p`` and ``ci`` are NaN)


def paired_delta(
    delta: float, samples: np.ndarray, n_clusters: int, level: float = 0.95,
    spread: Spread = Spread(),
) -> PairedBootstrap:
    """CI and two-sided p of Δ: ``Δ / SE`` referred to ``t_df``, ``SE²`` the speaker bootstrap's
    variance (with the small-sample widening) plus the models' (``spread``), ``df`` by
    Satterthwaite; the CI excludes 0 exactly when p < 1 − level."""
    from scipy.stats import t

    nan = float("nan")
    finite = samples[np.isfinite(samples)]
    if finite.size < 2 or n_clusters < 2:
        return PairedBootstrap(delta, (nan, nan), nan,
                               missing="the speaker bootstrap needs at least 2 test speakers")
    if spread.missing:
        return PairedBootstrap(delta, (nan, nan), nan, missing=spread.missing)
    total, df = _total(_widen(n_clusters) ** 2 * float(np.var(finite, ddof=1)), n_clusters,
                       spread)
    se = float(np.sqrt(total))
    if se == 0.0:
        return PairedBootstrap(delta, (delta, delta), 1.0 if delta == 0 else 0.0, df)
    half = float(t.ppf((1 + level) / 2, df)) * se
    p = float(2 * t.sf(abs(delta) / se, df))
    return PairedBootstrap(delta, (delta - half, delta + half), p, df)


def paired_bootstrap(
    a: Pooled, b: Pooled, metric: str = "uar", n_boot: int = N_BOOT, seed: int = 0,
    test_id: str = "", level: float = 0.95,
) -> PairedBootstrap:
    """Δ = metric(A) − metric(B) on shared speaker replicates, with both conditions' model
    variance: CI and p-value."""
    check_paired(a, b)
    n = len(a.speaker_names)
    w = bootstrap_weights(n, n_boot, rng_for(seed, test_id))
    ca, cb = a.speaker_confusions(), b.speaker_confusions()
    samples = replicate_metric(ca, w, metric) - replicate_metric(cb, w, metric)
    return paired_delta(a.metric(metric) - b.metric(metric), samples, n, level,
                        model_spread(a, metric) + model_spread(b, metric))


def check_paired(a: Pooled, b: Pooled) -> None:
    if a.labels != b.labels:
        raise PairingError(f"the conditions use different labels ({', '.join(a.labels)} vs "
                           f"{', '.join(b.labels)})")
    if len(a.keys) != len(b.keys) or not np.array_equal(a.keys, b.keys):
        raise PairingError("the conditions were tested on different utterances")
    if not np.array_equal(a.y_true, b.y_true):
        raise PairingError("the conditions disagree on the true labels of their test utterances")


# ------------------------------------------------------------------------------- exact tests


