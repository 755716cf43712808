"""``serbench compare A B`` on results folders written through ``Store.write``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from serbench.cli import main
from serbench.judge.metrics import compute_metrics
from serbench.run.budgets import PRESETS
from serbench.run.simulate import make_corpus, simulate_predictions, write_condition
from serbench.store import Store

ISSUE_KEYS = {"a", "b", "delta_uar", "delta_uar_ci", "p_bootstrap", "p_mcnemar", "p_wilcoxon",
              "significant"}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 speakers × 30 utterances, 10 LOSO folds, 2 seeds per condition."""
    root = tmp_path_factory.mktemp("compare") / "results"
    rng = np.random.default_rng(5)
    corpus = make_corpus(rng, n_speakers=10, per_speaker=30)
    store = Store(root)
    for method, skill, options in (("sl_gemo", 1.5, {}), ("emo_clap", 0.3, {}),
                                   ("linear", 0.3, {"normalize": "speaker"})):
        write_condition(store, corpus, simulate_predictions(corpus, skill, 2, rng), method,
                        "wavlm_large", options=options)
    write_condition(store, corpus, simulate_predictions(corpus, 0.3, 1, rng), "mlp",
                    "wavlm_large", budget=PRESETS["probe"])
    return root


def _compare(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["compare", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _seed_pooled_uar(results: Path, method: str) -> float:
    """Mean over seeds of the UAR of each seed's predictions pooled over folds, by hand."""
    per_seed: dict[int, tuple[list[str], list[str]]] = {}
    labels: list[str] = []
    for run in (results / "runs").iterdir():
        rec = json.loads((run / "run.json").read_text())
        if rec["spec"]["method"] != method:
            continue
        labels = rec["labels"]
        y, p = per_seed.setdefault(rec["spec"]["seed"], ([], []))
        for line in (run / "predictions.jsonl").read_text().splitlines():
            d = json.loads(line)
            y.append(d["label"])
            p.append(d["prediction"])
    return float(np.mean([compute_metrics([labels.index(x) for x in y],
                                          [labels.index(x) for x in p], labels)["uar"]
                          for y, p in per_seed.values()]))


def test_planted_difference_is_significant_in_every_test(results: Path, capsys) -> None:
    code, out, _ = _compare(capsys, "sl_gemo/wavlm_large", "emo_clap/wavlm_large", "--results",
                            str(results), "--dataset", "simulated", "--json")
    r = json.loads(out)
    assert code == 0 and ISSUE_KEYS <= set(r)
    want = _seed_pooled_uar(results, "sl_gemo") - _seed_pooled_uar(results, "emo_clap")
    assert r["delta_uar"] == pytest.approx(want)
    assert r["delta_uar"] > 0.15 and r["delta_uar_ci"][0] > 0
    assert r["significant"] is True
    assert r["p_bootstrap"] < 0.01 and r["p_mcnemar"] < 0.001 and r["p_wilcoxon"] < 0.01
    assert (r["matched_runs"], r["wilcoxon_pairs"], r["wilcoxon_unit"]) == (20, 10, "fold")
    assert r["test_utterances"] == 300 and r["speakers"] == 10
    assert (r["a"]["condition"], r["a"]["runs"], r["b"]["condition"]) == (
        "sl_gemo/wavlm_large", 20, "emo_clap/wavlm_large")
    for label, d in r["per_class_recall_delta"].items():
        assert d == pytest.approx(r["a"]["per_class_recall"][label]
                                  - r["b"]["per_class_recall"][label])
    assert r["verdict"].startswith("sl_gemo/wavlm_large beats emo_clap/wavlm_large by ")
    assert r["verdict"].endswith(": significant at alpha 0.05.")


def test_equal_systems_are_not_significant(results: Path, capsys) -> None:
    code, out, _ = _compare(capsys, "emo_clap/wavlm_large", "linear/wavlm_large[normalize=speaker]",
                            "--results", str(results))
    assert code == 0
    verdict = next(line for line in out.splitlines() if line.startswith("verdict: "))
    assert verdict.startswith("verdict: The difference between emo_clap/wavlm_large and "
                              "linear[normalize=speaker]/wavlm_large (")
    assert verdict.endswith(") is not significant at alpha 0.05.")
    for heading in ("paired tests, A = emo_clap/wavlm_large minus B = linear[normalize=speaker]/"
                    "wavlm_large:", "per-class recall % (pooled):", "McNemar exact",
                    "Wilcoxon signed-rank", "10 folds, seeds averaged (20 matched (fold, seed) "
                    "runs)"):
        assert heading in out
    _, js, _ = _compare(capsys, "linear[normalize=speaker]/wavlm_large", "emo_clap/wavlm_large",
                        "--results", str(results), "--json")
    assert json.loads(js)["significant"] is False


def test_swapping_a_and_b_flips_the_difference(results: Path, capsys) -> None:
    args = ("--results", str(results), "--json")
    ab = json.loads(_compare(capsys, "sl_gemo/wavlm_large", "emo_clap/wavlm_large", *args)[1])
    ba = json.loads(_compare(capsys, "emo_clap/wavlm_large", "sl_gemo/wavlm_large", *args)[1])
    assert ba["delta_uar"] == pytest.approx(-ab["delta_uar"])
    assert ba["delta_uar_ci"] == pytest.approx([-ab["delta_uar_ci"][1], -ab["delta_uar_ci"][0]])
    for key in ("p_bootstrap", "p_mcnemar", "p_wilcoxon"):
        assert ba[key] == pytest.approx(ab[key])


def test_reproducible_with_a_seed(results: Path, capsys) -> None:
    args = ("sl_gemo/wavlm_large", "emo_clap/wavlm_large", "--results", str(results), "--json")
    first = _compare(capsys, *args)[1]
    assert _compare(capsys, *args)[1] == first
    other = json.loads(_compare(capsys, *args, "--seed", "3")[1])
    assert other["delta_uar"] == json.loads(first)["delta_uar"]
    assert other["delta_uar_ci"] != json.loads(first)["delta_uar_ci"]


def test_refuses_different_test_sets(results: Path, tmp_path: Path, capsys) -> None:
    root = Path(shutil.copytree(results, tmp_path / "r"))
    store = Store(root)
    for row in store.query(method="emo_clap", fold="3"):
        shutil.rmtree(root / "runs" / row["run_id"])
    store.rebuild_index()
    code, out, err = _compare(capsys, "sl_gemo/wavlm_large", "emo_clap/wavlm_large", "--results",
                              str(root))
    assert (code, out) == (2, "")
    assert err == ("serbench: error: cannot pair sl_gemo/wavlm_large with emo_clap/wavlm_large on "
                   "simulated: their test sets differ (folds only in sl_gemo/wavlm_large: 3); "
                   "run both on the same folds of the same data\n")


def test_refuses_changed_test_utterances(results: Path, tmp_path: Path, capsys) -> None:
    """Same folds, but one run's stored test hash differs (the dataset changed)."""
    root = Path(shutil.copytree(results, tmp_path / "r"))
    store = Store(root)
    row = store.query(method="emo_clap", fold="2", seed=0)[0]
    path = root / "runs" / row["run_id"] / "run.json"
    rec = json.loads(path.read_text())
    rec["test_hash"] = "0123456789abcdef"
    path.write_text(json.dumps(rec))
    store.rebuild_index()
    code, _, err = _compare(capsys, "sl_gemo/wavlm_large", "emo_clap/wavlm_large", "--results",
                            str(root))
    assert code == 2
    assert err.startswith("serbench: error: emo_clap/wavlm_large on simulated: the runs of fold 2 "
                          "were tested on different utterances (test hashes 0123456789abcdef, ")


def test_refuses_different_budgets(results: Path, capsys) -> None:
    code, _, err = _compare(capsys, "mlp/wavlm_large", "sl_gemo/wavlm_large", "--results",
                            str(results))
    assert code == 2
    assert err == ("serbench: error: mlp/wavlm_large ran under budget probe (b6995a11cbed) and "
                   "sl_gemo/wavlm_large under budget smoke (ccb2000f23f8) on simulated: conditions "
                   "with different budgets are not compared; run both under one --budget\n")


@pytest.mark.parametrize("a,b,message", [
    ("sl_gemo/wavlm_large", "sl_gemo/wavlm_large",
     "sl_gemo/wavlm_large and sl_gemo/wavlm_large name the same condition"),
    ("linear/wavlm_large", "sl_gemo/wavlm_large",
     "condition 'linear/wavlm_large' has no finished runs here; did you mean "
     "'linear[normalize=speaker]/wavlm_large'?"),
    ("linear[normalize]/wavlm_large", "sl_gemo/wavlm_large",
     "condition 'linear[normalize]/wavlm_large': option 'normalize' is not key=value"),
    ("sl_gemo", "emo_clap/wavlm_large", "condition 'sl_gemo' is not METHOD/UPSTREAM"),
])
def test_bad_names_are_one_clear_line(results: Path, capsys, a: str, b: str, message: str) -> None:
    code, _, err = _compare(capsys, a, b, "--results", str(results))
    assert code == 2 and err.startswith(f"serbench: error: {message}") and err.count("\n") == 1


def test_one_test_speaker_is_reported_as_untestable(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    corpus = make_corpus(rng, n_speakers=1, per_speaker=30)
    store = Store(tmp_path / "r")
    for method, skill in (("a", 1.0), ("b", 0.0)):
        write_condition(store, corpus, simulate_predictions(corpus, skill, 1, rng), method, "x")
    code, out, _ = _compare(capsys, "a/x", "b/x", "--results", str(tmp_path / "r"), "--json")
    r = json.loads(out)
    assert code == 0 and r["significant"] is False and r["p_bootstrap"] is None
    assert r["delta_uar_ci"] is None and r["p_wilcoxon"] is None
    assert r["wilcoxon_note"] == ("1 seed: the exact test cannot reach p < 0.05 (its smallest p "
                                  "is 1)")
    assert r["verdict"].endswith("which cannot be tested: the speaker bootstrap needs at least 2 "
                                 "test speakers.")
    main(["leaderboard", "--results", str(tmp_path / "r")])
    board = capsys.readouterr().out
    assert "no pair could be tested (see below)." in board
    assert "Not tested: a/x, b/x: the speaker bootstrap needs at least 2 test speakers." in board


def test_a_condition_has_the_same_ci_in_compare_and_in_the_leaderboard(results: Path,
                                                                        capsys) -> None:
    r = json.loads(_compare(capsys, "sl_gemo/wavlm_large", "emo_clap/wavlm_large", "--results",
                            str(results), "--json")[1])
    main(["leaderboard", "--results", str(results), "--format", "json"])
    rows = {row["condition"]: row for row in json.loads(capsys.readouterr().out)}
    assert len(rows) == 4
    for side in ("a", "b"):
        row = rows[r[side]["condition"]]
        assert row["uar_ci"] == r[side]["uar_ci"] and row["uar"] == r[side]["uar"]


def test_five_folds_say_wilcoxon_cannot_reach_alpha_and_mcnemar_is_descriptive(
    tmp_path: Path, capsys
) -> None:
    """IEMOCAP-like: 5 folds of 2 speakers, 3 seeds. The exact Wilcoxon over 5 folds cannot give
    p < 0.0625, so no p is printed for it; McNemar is shown, but outside the verdict."""
    rng = np.random.default_rng(8)
    corpus = make_corpus(rng, n_speakers=10, per_speaker=30, n_folds=5)
    store = Store(tmp_path / "r")
    for method, skill in (("a", 1.5), ("b", 0.0)):
        write_condition(store, corpus, simulate_predictions(corpus, skill, 3, rng, model_sd=0.15),
                        method, "x", protocol="loso_session")
    code, out, _ = _compare(capsys, "a/x", "b/x", "--results", str(tmp_path / "r"), "--json")
    r = json.loads(out)
    assert code == 0 and r["significant"] is True and r["p_wilcoxon"] is None
    assert r["wilcoxon_note"] == ("5 folds: the exact test cannot reach p < 0.05 (its smallest p "
                                  "is 0.0625)")
    assert r["p_mcnemar"] < 0.001 and 4 <= r["df"] <= 9
    _, text, _ = _compare(capsys, "a/x", "b/x", "--results", str(tmp_path / "r"))
    assert "McNemar exact (descriptive)" in text
    line = next(x for x in text.splitlines() if x.startswith("Wilcoxon signed-rank"))
    assert line.split()[2:] == "5 folds: the exact test cannot reach p < 0.05 (its smallest p is " \
        "0.0625) –".split()
    assert text.startswith("simulated / loso_session · budget smoke · SMOKE TEST (a few steps: "
                           "not a result) · 300 test utterances, 10 speakers\n")


def test_conditions_that_tuned_different_options_get_no_verdict(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(2)
    corpus = make_corpus(rng, n_speakers=6, per_speaker=20)
    store = Store(tmp_path / "r")
    for method, tuned in (("emo_clap", ["lr"]), ("sl_gemo", ["alpha_e"])):
        write_condition(store, corpus, simulate_predictions(corpus, 1.0, 2, rng), method, "w",
                        extra={"tuned": tuned})
    code, out, _ = _compare(capsys, "emo_clap/w", "sl_gemo/w", "--results", str(store.root),
                            "--json")
    r = json.loads(out)
    assert code == 0 and r["p_bootstrap"] is None and r["significant"] is False
    assert r["verdict"].endswith("which cannot be tested: they tuned different options "
                                 "(emo_clap/w: lr; sl_gemo/w: alpha_e): tune the same ones.")
