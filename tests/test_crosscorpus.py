"""Cross-corpus runs: train on all of A, test on all of B, over the labels both share; on real
EmoDB audio (two speaker-disjoint manifests) and on generated IEMOCAP / RAVDESS trees."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import soundfile as sf
from test_datasets_iemocap import build_tree as iemocap_tree
from test_datasets_ravdess import build_tree as ravdess_tree

from serbench.cli import main
from serbench.data.features import list_entries
from serbench.data.manifests import audio_path
from serbench.data.view import load_dataset
from serbench.registry import collect

FOUR = ("angry", "happy", "neutral", "sad")


def _manifest(path: Path, data_root: Path, speakers: set[str]) -> Path:
    view = load_dataset(collect(), "emodb", data_root, None, {})
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["key", "path", "label", "speaker", "gender"])
        for u in view.utterances:
            if u.speaker in speakers:
                w.writerow([u.key, audio_path(view.root, u), u.label, u.speaker, u.gender])
    return path


def _records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.glob("runs/*/run.json"))]


def test_emodb_part_to_a_speaker_disjoint_part(tmp_path: Path, data_root: Path, capsys) -> None:
    train = _manifest(tmp_path / "a.csv", data_root, {"03", "08", "09"})
    test = _manifest(tmp_path / "b.csv", data_root, {"10", "11"})
    results = tmp_path / "results"
    argv = ["run", "--method", "linear", "--method", "mlp", "--upstream", "fbank", "--dataset",
            "manifest", "--data-root", str(train), "--test-dataset", "manifest",
            "--test-data-root", str(test), "--seeds", "3", "--budget", "smoke", "--results",
            str(results), "--quiet"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert ("serbench: cross-corpus manifest→manifest: manifest (train)'s classes bored, "
            "disgusted, fearful dropped (not in the label set); manifest (test)'s classes bored, "
            "disgusted, fearful dropped (not in the label set); classes kept: angry, happy, "
            "neutral, sad") in err
    records = _records(results)
    assert len(records) == 6 and all(r["status"] == "ok" for r in records)
    r = records[0]
    assert (r["spec"]["dataset"], r["spec"]["protocol"], r["spec"]["fold"]) == (
        "manifest→manifest", "cross_corpus", "all")
    # train: speakers 03, 08 (81 utterances of the four classes); dev: speaker 09 (30);
    # test: every four-class utterance of speakers 10 and 11 (21 + 35)
    assert (r["n_train"], r["n_dev"], r["n_test"]) == (81, 30, 56)
    assert r["labels"] == list(FOUR)
    cross = r["cross_corpus"]
    assert (cross["train_dataset"], cross["test_dataset"]) == ("manifest", "manifest")
    assert cross["label_map"] == {lab: lab for lab in FOUR}
    assert cross["dev_speakers"] == ["09"]
    # one cache entry per corpus, and a within-corpus run of A reuses A's
    assert len(list_entries()) == 2
    assert main(["run", "--method", "linear", "--upstream", "fbank", "--dataset", "manifest",
                 "--data-root", str(train), "--folds", "0", "--results", str(results),
                 "--budget", "smoke", "--seeds", "1", "--quiet"]) == 0
    assert len(list_entries()) == 2
    capsys.readouterr()
    assert main(["leaderboard", "--results", str(results)]) == 0
    md = capsys.readouterr().out
    cross_title = next(line for line in md.splitlines() if "cross_corpus" in line)
    assert cross_title.startswith("### manifest→manifest") and "/ cross_corpus ·" in cross_title
    assert md.count("### ") == 2  # within- and cross-corpus never share a table
    # both conditions were tested on the same 56 test utterances: the paired tests run
    assert main(["compare", "linear/fbank", "mlp/fbank", "--results", str(results),
                 "--dataset", "manifest→manifest", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["test_utterances"] == 56 and report["speakers"] == 2
    assert report["p_bootstrap"] is not None and report["matched_runs"] == 3


def _noisy(root: Path, seconds: float) -> None:
    """The generated trees' wavs are near-silent and very short: make them short noise."""
    rng = np.random.default_rng(0)
    for wav in root.rglob("*.wav"):
        if wav.name.startswith("._"):
            continue
        rate = sf.info(str(wav)).samplerate
        sf.write(str(wav), 0.1 * rng.standard_normal(int(seconds * rate)).astype(np.float32),
                 rate, subtype="PCM_16")


def test_iemocap_to_ravdess_on_generated_trees(tmp_path: Path, capsys) -> None:
    root = tmp_path / "corpora"
    _noisy(iemocap_tree(root), 0.5)
    _noisy(ravdess_tree(root), 0.3)
    results = tmp_path / "results"
    argv = ["run", "--method", "linear", "--upstream", "fbank", "--dataset", "iemocap",
            "--data-root", str(root), "--test-dataset", "ravdess", "--results", str(results),
            "--quiet", "--cross-labels", "angry,happy,neutral,sad,calm", "--budget", "smoke",
            "--seeds", "1"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert ("serbench: cross-corpus iemocap→ravdess: label calm dropped (missing on iemocap); "
            "ravdess's classes disgusted, fearful, surprised dropped (not in the label "
            "set); classes kept: angry, happy, neutral, sad") in err
    (r,) = _records(results)
    assert r["status"] == "ok", r["error"]
    # RAVDESS tree: 6 utterances per class, 4 classes kept; IEMOCAP tree: 15 utterances of 10
    # speakers, the last (Ses05M) for dev
    assert (r["n_test"], r["n_train"] + r["n_dev"]) == (24, 15)
    assert r["cross_corpus"]["missing"] == ["calm"]
    assert r["cross_corpus"]["dev_speakers"] == ["Ses05M"]


def test_test_dataset_options_need_a_test_dataset(capsys) -> None:
    assert main(["run", "--method", "linear", "--upstream", "fbank", "--dataset", "emodb",
                 "--test-dataset-option", "label_set=4class"]) == 2
    assert capsys.readouterr().err.strip() == (
        "serbench: error: --test-dataset-option needs --test-dataset B (the corpus to test on)")
    assert main(["run", "--suite", "any.yaml", "--test-dataset", "ravdess"]) == 2
    assert capsys.readouterr().err.strip() == (
        "serbench: error: --test-dataset does not apply to --suite: set test_dataset: in the "
        "suite file (see docs/cross_corpus.md)")


def test_summary_gives_mean_uar_and_mean_rank_over_the_datasets(tmp_path: Path, capsys) -> None:
    from serbench.run.simulate import make_corpus, simulate_predictions, write_condition
    from serbench.store import Store

    rng = np.random.default_rng(2)
    store = Store(tmp_path / "r")
    corpus = make_corpus(rng, n_speakers=4, per_speaker=20)
    skills = {"emodb": {"strong": 2.0, "weak": -1.0},
              "iemocap→ravdess": {"strong": 2.0, "weak": -1.0, "only": 0.0}}
    for dataset, methods in skills.items():
        for method, skill in methods.items():
            write_condition(store, corpus, simulate_predictions(corpus, skill, 1, rng), method,
                            "fbank", dataset=dataset)
    assert main(["leaderboard", "--results", str(store.root), "--summary", "--format",
                 "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["condition"], r["datasets"], r["mean_rank"]) for r in rows] == [
        ("strong/fbank", 2, 1.0), ("weak/fbank", 2, 2.5), ("only/fbank", 1, 2.0)]
    assert rows[0]["covered"] == ["emodb/loso_speaker", "iemocap→ravdess/loso_speaker"]
    assert main(["leaderboard", "--results", str(store.root), "--summary"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("### Summary over datasets")
    assert "| strong/fbank | smoke  |        2 |" in md
    assert main(["leaderboard", "--results", str(store.root), "--summary", "--format",
                 "latex"]) == 2
    assert capsys.readouterr().err.strip() == (
        "serbench: error: --summary prints md, csv, json; got --format latex")


def test_suites_name_a_test_dataset(tmp_path: Path) -> None:
    from serbench.run.suites import _Checker, _entries, load_suite, read_suite

    shipped = Path(__file__).resolve().parents[1] / "benchmarks" / "suites" / "cross_corpus.yaml"
    entries = _entries(_Checker(shipped), read_suite(shipped), collect(), False)
    names = ("iemocap", "msp_podcast", "crema_d", "ravdess")
    assert {(e.dataset, e.cross["test_dataset"]) for e in entries} == {
        (a, b) for a in names for b in names if a != b}
    assert {len(e.seeds) for e in entries} == {3}
    root = tmp_path / "corpora"
    iemocap_tree(root)
    ravdess_tree(root)
    suite = tmp_path / "suite.yaml"
    suite.write_text("dataset: iemocap\ntest_dataset: ravdess\nbudget: smoke\nseeds: 3\n"
                     "entries:\n  - {methods: linear, upstreams: [fbank, egemaps]}\n")
    (plan,) = [p.plan for p in load_suite(suite, collect(), data_root=root).plans]
    assert [(r.spec.dataset, r.spec.fold, r.spec.seed) for r in plan.runs][:3] == [
        ("iemocap→ravdess", "all", 0), ("iemocap→ravdess", "all", 1), ("iemocap→ravdess", "all", 2)]
    assert len(plan.runs) == 6
