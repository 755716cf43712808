"""Calibration of the verdict with a known truth: trained models that are luckily good or bad.

Every simulated trained model (fold × seed) gets its own skill shift (``model_sd`` logit), shared
by all the test speakers of its fold. The speaker bootstrap alone rejected a true null 28 % of the
time with 2 speakers per fold and 53 % with one 60-speaker split (SD 0.15); the verdict must stay
within α plus two binomial standard errors, and still find a real difference.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from serbench.cli import main
from serbench.judge.conditions import Table
from serbench.judge.ranking import build
from serbench.judge.stats import (
    bootstrap_weights,
    paired_bootstrap,
    paired_delta,
    replicate_metric,
    rng_for,
)
from serbench.run.simulate import (
    DESIGNS,
    condition,
    make_corpus,
    pooled,
    simulate_predictions,
    verdict_p,
    write_condition,
)
from serbench.store import Store

ALPHA = 0.05
N_SIMS = 500


def bound(n: int) -> float:
    """α plus two binomial standard errors of a rate estimated from ``n`` simulations."""
    return ALPHA + 2 * np.sqrt(ALPHA * (1 - ALPHA) / n)


@pytest.mark.parametrize("model_sd", [0.0, 0.15, 0.3])
@pytest.mark.parametrize("design", DESIGNS, ids=[d.name for d in DESIGNS])
def test_false_positive_rate_of_the_verdict_holds(design, model_sd: float) -> None:
    ps, _ = verdict_p(design, 0.0, model_sd, n_seeds=3, n_sims=N_SIMS, seed=2026)
    assert not np.isnan(ps).any()
    rate = float(np.mean(ps < ALPHA))
    assert rate <= bound(N_SIMS), f"{design.name}, model SD {model_sd}: false positives {rate:.3f}"


@pytest.mark.parametrize("design,shift", [(DESIGNS[0], 0.4), (DESIGNS[1], 0.4), (DESIGNS[2], 0.6)],
                         ids=[d.name for d in DESIGNS])
def test_a_planted_difference_is_found(design, shift: float) -> None:
    """Power ≥ 0.8 at a planted skill difference of 0.4 logit (about 7 UAR points) with 10
    speakers, 0.6 logit (about 10 points) on one 60-speaker split; model SD 0.15, 3 seeds."""
    ps, deltas = verdict_p(design, shift, 0.15, n_seeds=3, n_sims=200, seed=11)
    assert float(np.mean(ps < ALPHA)) >= 0.8
    assert 0.06 < float(np.mean(deltas)) < (0.075 if shift == 0.4 else 0.11)


def test_one_seed_gives_no_verdict_where_speakers_share_a_model() -> None:
    rng = np.random.default_rng(0)
    for design, testable in ((DESIGNS[0], True), (DESIGNS[1], False), (DESIGNS[2], False)):
        corpus = make_corpus(rng, design.n_speakers, design.per_speaker, design.n_folds)
        a, b = (pooled(corpus, simulate_predictions(corpus, 0.5, 1, rng, model_sd=0.3))
                for _ in range(2))
        r = paired_bootstrap(a, b)
        assert np.isfinite(r.p) == testable, design.name
        if not testable:
            per_fold = design.n_speakers // design.n_folds
            assert r.missing == (f"1 seed per fold with {per_fold} test speakers sharing each "
                                 "trained model")


def _marks_wrongly(n_systems: int, n_sims: int) -> float:
    """Share of leaderboards of identical systems that mark one significantly worse."""
    wrong = 0
    for i in range(n_sims):
        rng = np.random.default_rng([n_systems, i])
        corpus = make_corpus(rng, 10, 30)
        conds = [condition(f"m{j}", corpus, simulate_predictions(corpus, 0.5, 2, rng,
                                                                 model_sd=0.15))
                 for j in range(n_systems)]
        board = build([Table("simulated", "loso", {}, "smoke", "sig", conds)], n_boot=100,
                      seed=i)[0]
        wrong += any(row["not_worse_than_best"] is False for row in board.rows)
    return wrong / n_sims


@pytest.mark.slow
def test_leaderboard_marks_hold_their_family_wise_error_with_six_identical_systems() -> None:
    """The best is picked after looking: marks must still be wrong in at most α of tables."""
    assert _marks_wrongly(6, 300) <= bound(300)


@pytest.mark.slow
def test_leaderboard_marks_hold_their_family_wise_error_with_ten_identical_systems() -> None:
    assert _marks_wrongly(10, 300) <= bound(300)


def _compare_json(root: Path, capsys, *extra: str) -> dict:
    assert main(["compare", "b/wavlm", "a/wavlm", "--results", str(root), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_compare_end_to_end_on_one_split_shared_by_60_speakers(tmp_path: Path, capsys) -> None:
    """Two systems equal in distribution on one 60-speaker split, model SD 0.3: the speaker
    bootstrap alone calls this pair different (p < 0.001); with the models' variance it is not;
    with one seed there is no verdict, and the report says how to get one."""
    rng = np.random.default_rng(6)
    corpus = make_corpus(rng, 60, 20, 1)
    preds = [simulate_predictions(corpus, 0.5, 3, rng, model_sd=0.3) for _ in range(2)]
    store = Store(tmp_path / "r")
    for method, p in zip("ab", preds, strict=True):
        write_condition(store, corpus, p, method, "wavlm", protocol="official")
    r = _compare_json(tmp_path / "r", capsys)
    assert _speakers_only_p(corpus, preds) < 0.001 and abs(r["delta_uar"]) > 0.05
    assert r["significant"] is False and r["p_bootstrap"] > 0.05 and r["df"] < 10
    assert r["verdict"].startswith("The difference between b/wavlm and a/wavlm (")
    lone = Store(tmp_path / "one")
    for method, p in zip("ab", preds, strict=True):
        write_condition(lone, corpus, p[:1], method, "wavlm", protocol="official")
    one = _compare_json(tmp_path / "one", capsys)
    assert one["significant"] is False and one["p_bootstrap"] is None
    assert one["a"]["uar_ci"] == [None, None]  # no interval that leaves the models out
    assert one["verdict"].endswith(
        "which cannot be tested: 1 seed per fold with 60 test speakers sharing each trained model: "
        "run --seeds 3 for a verdict.")
    assert main(["compare", "b/wavlm", "a/wavlm", "--results", str(tmp_path / "one")]) == 0
    text = capsys.readouterr().out
    assert "no test: 1 seed per fold with 60 test speakers sharing each trained model" in text
    assert main(["leaderboard", "--results", str(tmp_path / "one")]) == 0
    board = capsys.readouterr().out
    row = next(x for x in board.splitlines() if x.startswith("| b/wavlm"))
    assert re.fullmatch(r"\d+\.\d –", row.split("|")[3].strip())  # pooled UAR, no CI
    assert ("–: no CI where one seed per fold was run on folds of several test speakers (the "
            "trained models' variance cannot be estimated: run --seeds 3).") in board


def _speakers_only_p(corpus, preds: list[np.ndarray]) -> float:
    """The p-value the speaker bootstrap alone gives (as serbench did before models counted)."""
    a, b = pooled(corpus, preds[0]), pooled(corpus, preds[1])
    n = len(a.speaker_names)
    w = bootstrap_weights(n, 1000, rng_for(0, ""))
    d = (replicate_metric(b.speaker_confusions(), w, "uar")
         - replicate_metric(a.speaker_confusions(), w, "uar"))
    return paired_delta(b.metric("uar") - a.metric("uar"), d, n).p


def test_a_condition_ci_covers_the_true_uar_when_models_are_shared() -> None:
    """One 60-speaker split, 3 seeds, model SD 0.3: the true UAR is P(right) = E[sigmoid(skill
    + Z)], Z the simulation's summed normal noise (speaker 0.6, utterance 1, system 0.5, model
    0.3, seed 0.5). The speaker bootstrap alone covered it in 62 % of simulations; with the models'
    variance about 93 % (3 seeds leave the model term only 2 degrees of freedom)."""
    from serbench.judge.stats import model_spread, percentile_ci

    skill, sd = 0.5, np.sqrt(0.6**2 + 1 + 0.5**2 + 0.3**2 + 0.5**2)
    z = np.random.default_rng(0).normal(0, sd, 2_000_000)
    truth = float(np.mean(1 / (1 + np.exp(-(skill + z)))))
    covered = []
    for i in range(300):
        rng = np.random.default_rng([7, i])
        corpus = make_corpus(rng, 60, 20, 1)
        p = pooled(corpus, simulate_predictions(corpus, skill, 3, rng, model_sd=0.3))
        w = bootstrap_weights(60, 400, rng_for(i, ""))
        lo, hi = percentile_ci(replicate_metric(p.speaker_confusions(), w, "uar"), 60,
                               spread=model_spread(p, "uar"), estimate=p.metric("uar"))
        covered.append(lo <= truth <= hi)
    assert 0.90 <= np.mean(covered) <= 1.0
