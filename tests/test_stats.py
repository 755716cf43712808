"""Statistics: exact tests against scipy and by hand, pooling, and error rates in simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from serbench.judge.conditions import Condition
from serbench.judge.exact import (
    holm,
    mcnemar_exact,
    mcnemar_pooled,
    wilcoxon_matched,
    wilcoxon_signed_rank,
)
from serbench.judge.metrics import compute_metrics, metric_from_confusion
from serbench.judge.ranking import Samples, pair
from serbench.judge.stats import (
    Pooled,
    Spread,
    bootstrap_weights,
    metric_gradient,
    model_spread,
    paired_bootstrap,
    percentile_ci,
    pool,
    replicate_metric,
    rng_for,
)
from serbench.run.simulate import Corpus, make_corpus, pooled, simulate_predictions
from serbench.store import Store

LABELS = ("ang", "hap", "neu", "sad")


# --------------------------------------------------------------------------- exact tests


def test_mcnemar_matches_a_hand_computed_binomial() -> None:
    # 1 vs 9 discordant pairs: p = 2 * (C(10,0) + C(10,1)) / 2**10
    assert mcnemar_exact(1, 9) == pytest.approx(2 * 11 / 1024)
    assert mcnemar_exact(9, 1) == pytest.approx(2 * 11 / 1024)
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(4, 4) == 1.0
    assert mcnemar_exact(0, 0) == 1.0


@pytest.mark.parametrize("b,c", [(3, 12), (20, 31), (0, 1), (7, 7), (50, 20)])
def test_mcnemar_matches_scipy_binomtest(b: int, c: int) -> None:
    want = sps.binomtest(b, b + c, 0.5).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(want, rel=1e-9)


def test_mcnemar_is_vectorised() -> None:
    got = mcnemar_exact(np.array([1, 4, 0]), np.array([9, 4, 0]))
    assert got == pytest.approx([2 * 11 / 1024, 1.0, 1.0])


def test_mcnemar_counts_majority_of_seeds_correctness() -> None:
    # utterance u0: A right in 2 of 3 seeds, B in 1 of 3 -> (A right, B wrong); u1 the reverse.
    keys = ["u0", "u1", "u2"] * 3
    spk = ["s0", "s1", "s2"] * 3
    y = [0, 1, 2] * 3
    a = pool(keys, spk, y, [0, 0, 2, 0, 1, 2, 1, 0, 2], LABELS)  # u0 2/3, u1 1/3, u2 3/3
    b = pool(keys, spk, y, [1, 1, 2, 0, 1, 2, 1, 1, 2], LABELS)  # u0 1/3, u1 2/3, u2 3/3
    assert mcnemar_pooled(a, b) == (1, 1, 1.0)


def test_wilcoxon_matches_scipy_and_a_hand_computed_case() -> None:
    # five positive differences: the exact two-sided p is 2 / 2**5
    assert wilcoxon_signed_rank([0.6, 0.7, 0.8, 0.9, 1.0], [0.5, 0.5, 0.5, 0.5, 0.5]) == \
        pytest.approx(2 / 32)
    rng = np.random.default_rng(3)
    a, b = rng.random(12), rng.random(12)
    assert wilcoxon_signed_rank(a, b) == pytest.approx(sps.wilcoxon(a, b).pvalue)
    assert wilcoxon_signed_rank([0.5, 0.6], [0.5, 0.6]) == 1.0
    # tied magnitudes (mid-ranks 2, 2, 2, 4.5, 4.5, 6): negative rank sum <= 2 in 4 of the 2**6
    # sign flips (none negative, or one of the rank-2 ones), so p = 2 * 4 / 64
    assert wilcoxon_signed_rank([1, 1, 2, 2, 3, -1], [0] * 6) == pytest.approx(0.125)


@pytest.mark.parametrize("seed", range(5))
def test_wilcoxon_with_ties_matches_scipy_exhaustive_permutation(seed: int) -> None:
    d = np.round(np.random.default_rng(seed).normal(0.3, 1, 12), 1)  # 2**12 < scipy's 9999
    d[:2] = [0.5, -0.5]  # a tie across signs
    assert wilcoxon_signed_rank(d, np.zeros(12)) == pytest.approx(sps.wilcoxon(d).pvalue)
    assert wilcoxon_signed_rank([], []) is None


def test_wilcoxon_pairs_folds_with_their_seeds_averaged() -> None:
    a = {("0", "0"): 0.5, ("0", "1"): 0.7, ("1", "0"): 0.6, ("1", "1"): 0.6, ("2", "0"): 0.9}
    b = {("0", "0"): 0.4, ("0", "1"): 0.4, ("1", "0"): 0.5, ("1", "1"): 0.5, ("2", "9"): 0.1}
    w = wilcoxon_matched(a, b)  # fold 2 has no matched seed; folds 0, 1 differ by +0.2, +0.1
    assert (w.pairs, w.runs, w.unit) == (2, 4, "fold")
    assert w.p == pytest.approx(wilcoxon_signed_rank([0.6, 0.6], [0.4, 0.5])) == 0.5
    one_fold = wilcoxon_matched({("0", str(s)): 0.5 + s / 100 for s in range(6)},
                                {("0", str(s)): 0.4 for s in range(6)})
    assert (one_fold.pairs, one_fold.unit, one_fold.p) == (6, "seed", pytest.approx(2 / 64))


def test_holm_by_hand() -> None:
    # sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1 -> kept monotone at 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, None, 0.01]) == [pytest.approx(0.5), None, pytest.approx(0.02)]
    assert holm([0.9, 0.3]) == pytest.approx([0.9, 0.6])
    assert holm([0.9, 0.8]) == [1.0, 1.0]  # capped at 1
    assert holm([]) == []


# --------------------------------------------------------------------------- pooling


def test_pool_averages_runs_per_utterance() -> None:
    keys = ["b", "a", "c", "a", "b", "c"]  # two seeds, each covering a, b, c once
    pooled = pool(keys, ["s1", "s0", "s1", "s0", "s1", "s1"], [1, 0, 2, 0, 1, 2],
                  [1, 0, 0, 1, 1, 2], LABELS)
    assert pooled.keys.tolist() == ["a", "b", "c"]
    assert pooled.speaker_names == ("s0", "s1")
    assert pooled.votes.tolist() == [[0.5, 0.5, 0, 0], [0, 1, 0, 0], [0.5, 0, 0.5, 0]]
    assert pooled.correct().tolist() == [0.5, 1.0, 0.5]
    assert pooled.speaker_confusions().sum(axis=0).tolist() == pooled.confusion().tolist()
    # pooled UAR = mean over seeds of each seed's UAR
    seed0 = compute_metrics([1, 0, 2], [1, 0, 0], LABELS)["uar"]
    seed1 = compute_metrics([0, 1, 2], [1, 1, 2], LABELS)["uar"]
    assert pooled.metric("uar") == pytest.approx((seed0 + seed1) / 2)


def test_pool_refuses_a_key_with_two_labels() -> None:
    with pytest.raises(ValueError, match="utterance 'a' has different true labels"):
        pool(["a", "a"], ["s", "s"], [0, 1], [0, 1], LABELS)


def test_single_run_pooled_metrics_equal_compute_metrics() -> None:
    rng = np.random.default_rng(0)
    corpus = make_corpus(rng, n_speakers=6, per_speaker=20)
    pred = simulate_predictions(corpus, 0.5, 1, rng)[0]
    pooled = pool(corpus.keys, corpus.speakers, corpus.y_true, pred, LABELS)
    want = compute_metrics(corpus.y_true, pred, LABELS)
    for m in ("uar", "war", "macro_f1"):
        assert pooled.metric(m) == pytest.approx(want[m])


def test_bootstrap_metric_is_vectorised_over_replicates() -> None:
    rng = np.random.default_rng(1)
    corpus = make_corpus(rng, n_speakers=5, per_speaker=12)
    pred = simulate_predictions(corpus, 0.0, 1, rng)[0]
    pooled = pool(corpus.keys, corpus.speakers, corpus.y_true, pred, LABELS)
    w = bootstrap_weights(5, 50, rng_for(0, "ab"))
    assert w.shape == (50, 5) and (w.sum(axis=1) == 5).all()
    boot = np.einsum("bs,sij->bij", w, pooled.speaker_confusions())
    vec = metric_from_confusion(boot, "macro_f1")
    one_by_one = [metric_from_confusion(c, "macro_f1") for c in boot]
    assert np.allclose(vec, one_by_one)
    # replicate 0 is the metric of the utterances of the speakers it drew, each as often as drawn
    idx = np.concatenate([np.flatnonzero(pooled.speakers == s) for s in range(5)
                          for _ in range(w[0, s])])
    assert vec[0] == pytest.approx(compute_metrics(corpus.y_true[idx], pred[idx],
                                                   LABELS)["macro_f1"])


def test_same_seed_same_draws() -> None:
    a = bootstrap_weights(10, 20, rng_for(0, "0123abcd"))
    assert (a == bootstrap_weights(10, 20, rng_for(0, "0123abcd"))).all()
    assert not (a == bootstrap_weights(10, 20, rng_for(1, "0123abcd"))).all()


def test_ci_widens_with_few_speakers() -> None:
    samples = np.random.default_rng(0).normal(0.5, 0.05, 4000)
    lo5, hi5 = percentile_ci(samples, 5)
    lo50, hi50 = percentile_ci(samples, 50)
    assert hi5 - lo5 > hi50 - lo50 > 0.18  # plain 95 % interval is about 0.196 wide
    assert np.isnan(percentile_ci(samples, 1)[0])


# --------------------------------------------------------------------------- error rates


def _simulated(seed: int, shift: float, seeds: int = 1) -> tuple[Corpus, list[np.ndarray]]:
    """10 speakers × 40 utterances; system B's skill is A's plus ``shift``."""
    rng = np.random.default_rng(seed)
    corpus = make_corpus(rng, n_speakers=10, per_speaker=40)
    return corpus, [simulate_predictions(corpus, skill, seeds, rng) for skill in (0.5, 0.5 + shift)]


def _pooled(corpus: Corpus, pred: np.ndarray) -> Pooled:
    """As the leaderboard pools stored runs: one trained model per (LOSO fold, seed)."""
    return pooled(corpus, pred)


def _condition(name: str, corpus: Corpus, pred: np.ndarray) -> Condition:
    """A condition as the leaderboard loads it: one run per (LOSO fold, seed), pooled."""
    runs = []
    for fold in range(corpus.n_folds):
        idx = corpus.fold == fold
        for seed in range(pred.shape[0]):
            uar = compute_metrics(corpus.y_true[idx], pred[seed, idx], LABELS)["uar"]
            runs.append({"run_id": f"{name}-{fold}-{seed}", "fold": str(fold), "seed": seed,
                         "test_hash": f"fold{fold}", "uar": uar})
    return Condition(Store("unused"), "sim", "loso", {}, "smoke", "sig", "up", name, {}, runs,
                     loaded=_pooled(corpus, pred))


def _three_p(seed: int, shift: float, seeds: int = 1) -> tuple[float, float, float]:
    """The leaderboard's own test of a pair (bootstrap, McNemar, Wilcoxon): B against A."""
    corpus, (pa, pb) = _simulated(seed, shift, seeds)
    notes: list[str] = []
    out = pair(_condition("b", corpus, pb), _condition("a", corpus, pa), "uar",
               Samples(400, seed), notes)
    assert not notes
    return out["p_bootstrap"], out["p_mcnemar"], out["p_wilcoxon"]


def test_same_systems_are_called_different_in_about_alpha_of_simulations() -> None:
    """Two systems equal in distribution: each test rejects at α = 0.05 in about 5 % of 300
    simulated corpora (binomial sd 1.3 %; a too-narrow bootstrap would be near 10 %)."""
    ps = np.array([_three_p(seed, 0.0) for seed in range(300)])
    rates = (ps < 0.05).mean(axis=0)
    for name, rate in zip(("bootstrap", "McNemar", "Wilcoxon"), rates, strict=True):
        assert 0.015 <= rate <= 0.085, f"{name} false-positive rate {rate:.3f}"


def test_null_rate_holds_when_seeds_are_pooled() -> None:
    """Three seeds per fold: seeds share their test speakers, and no test may count them as
    independent evidence (Wilcoxon over (fold, seed) pairs rejected 9.5 % here)."""
    ps = np.array([_three_p(seed, 0.0, seeds=3) for seed in range(1000, 1200)])
    rates = (ps < 0.05).mean(axis=0)
    assert (rates <= 0.085).all(), rates


def test_a_planted_difference_is_detected() -> None:
    ps = np.array([_three_p(seed, 1.0) for seed in range(20)])
    assert (ps < 0.05).mean(axis=0).tolist() == [1.0, 1.0, 1.0]


def test_paired_bootstrap_ci_and_p_agree() -> None:
    for seed in range(30):
        corpus, (pa, pb) = _simulated(seed, 0.3)
        r = paired_bootstrap(_pooled(corpus, pb), _pooled(corpus, pa), n_boot=300, seed=0,
                             test_id="0f")
        assert r.ci[0] <= r.delta <= r.ci[1]
        assert (r.p < 0.05) == (r.ci[0] > 0 or r.ci[1] < 0)


def test_condition_ci_covers_the_true_uar_about_95_percent_of_the_time() -> None:
    """With every class equally hard, the true UAR is P(right) = E[sigmoid(skill + Z)], Z the
    summed normal noise of the simulation (speaker 0.6, utterance 1, system 0.5, seed 0.5)."""
    skill = 0.5
    z = np.random.default_rng(0).normal(0, np.sqrt(0.6**2 + 1 + 0.5**2 + 0.5**2), 2_000_000)
    truth = float(np.mean(1 / (1 + np.exp(-(skill + z)))))
    covered = []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        corpus = make_corpus(rng, n_speakers=10, per_speaker=40)
        pred = simulate_predictions(corpus, skill, 1, rng)[0]
        pooled = pool(corpus.keys, corpus.speakers, corpus.y_true, pred, LABELS)
        w = bootstrap_weights(10, 1000, rng_for(seed, "ab"))
        lo, hi = percentile_ci(replicate_metric(pooled.speaker_confusions(), w, "uar"), 10)
        covered.append(lo <= truth <= hi)
    assert 0.91 <= np.mean(covered) <= 0.99


# --------------------------------------------------------------------------- model variance


@pytest.mark.parametrize("metric", ["uar", "war", "macro_f1"])
def test_metric_gradient_matches_finite_differences(metric: str) -> None:
    conf = np.array([[8.0, 1, 1], [2, 5, 3], [0, 2, 9]])
    g = metric_gradient(conf, metric)
    h = 1e-6
    for i in range(3):
        for j in range(3):
            up, down = conf.copy(), conf.copy()
            up[i, j] += h
            down[i, j] -= h
            num = metric_from_confusion(up, metric) - metric_from_confusion(down, metric)
            assert g[i, j] == pytest.approx(num / (2 * h), abs=1e-6)


def test_model_spread_is_zero_under_loso_and_needs_two_seeds_when_speakers_share_a_model() -> None:
    rng = np.random.default_rng(0)
    loso = make_corpus(rng, n_speakers=6, per_speaker=20)
    assert model_spread(pooled(loso, simulate_predictions(loso, 0.5, 3, rng)), "uar") == Spread()
    shared = make_corpus(rng, n_speakers=6, per_speaker=20, n_folds=2)
    assert model_spread(pooled(shared, simulate_predictions(shared, 0.5, 1, rng)), "uar") == \
        Spread(missing="1 seed per fold with 3 test speakers sharing each trained model")
    # a large per-model shift shows up as covariance between the speakers of one fold
    spread = model_spread(pooled(shared, simulate_predictions(shared, 0.5, 4, rng, model_sd=1.0)),
                          "uar")
    assert spread.var > 0 and spread.df_terms > 0 and spread.missing is None


def test_wilcoxon_smallest_p_says_when_alpha_is_out_of_reach() -> None:
    five = wilcoxon_matched({(str(f), "0"): 0.6 for f in range(5)},
                            {(str(f), "0"): 0.5 for f in range(5)})
    assert (five.pairs, five.p, five.smallest_p) == (5, pytest.approx(0.0625), 0.0625)
    six = wilcoxon_matched({(str(f), "0"): 0.6 for f in range(6)},
                           {(str(f), "0"): 0.5 for f in range(6)})
    assert six.smallest_p == 0.03125 == pytest.approx(six.p)
