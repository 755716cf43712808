"""Published references beside measured numbers: suite files, run records, every leaderboard
format, and ``serbench compare`` for a claimed gain."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from serbench.cli import main
from serbench.registry import collect
from serbench.run.simulate import make_corpus, simulate_predictions, write_condition
from serbench.run.suites import load_suite
from serbench.specs import ConfigError
from serbench.store import Store

SUITES = Path(__file__).resolve().parents[1] / "benchmarks" / "suites"


def _ref(upstream: str, metric: str, value: float, **extra: object) -> dict:
    return {"method": "linear", "upstream": upstream, "metric": metric, "value": value,
            "source": "A paper, Table 2", "dataset": "emodb", "protocol": "loso",
            "folds": None, "dataset_options": {}, "note": None, "options": {},
            "gain_over": None, **extra}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """linear/fbank, 3 seeds × 5 folds, carrying three references in its records: one inside the
    measured CI, one far above it, one far below; linear/egemaps one with another fold count."""
    root = tmp_path_factory.mktemp("refs") / "results"
    rng = np.random.default_rng(5)
    corpus = make_corpus(rng, n_speakers=10, per_speaker=30, n_folds=5)
    store = Store(root)
    pred = simulate_predictions(corpus, 1.0, 3, rng)
    from serbench.judge.metrics import compute_metrics

    war = 100 * compute_metrics(np.tile(corpus.y_true, 3), pred.ravel(), corpus.labels)["war"]
    refs = [_ref("fbank", "accuracy", round(war, 2)), _ref("fbank", "uar", 99.0),
            _ref("fbank", "war", 1.0, note="one split, no dev set")]
    write_condition(store, corpus, pred, "linear", "fbank", dataset="emodb", protocol="loso",
                    extra={"references": refs})
    write_condition(store, corpus, simulate_predictions(corpus, 0.0, 3, rng), "linear",
                    "egemaps", dataset="emodb", protocol="loso",
                    extra={"references": [_ref("egemaps", "uar", 30.0, folds=10)]})
    return root, {"war": war}


def _out(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_every_format_puts_published_beside_measured_with_a_verdict(results, capsys) -> None:
    root, facts = results
    rows = json.loads(_out(capsys, "leaderboard", "--results", str(root), "--format", "json"))
    fbank = next(r for r in rows if r["upstream"] == "fbank")
    checks = {(c["metric"], c["published"]): c for c in fbank["references"]}
    inside = checks[("accuracy", round(facts["war"], 2))]
    assert inside["verdict"] == "reproduced" and inside["protocol_differs"] is None
    assert inside["measured"] == pytest.approx(facts["war"] / 100)
    lo, hi = inside["measured_ci"]
    assert lo < facts["war"] / 100 < hi
    assert checks[("uar", 99.0)]["verdict"] == "below"
    assert checks[("war", 1.0)]["verdict"] == "above"
    assert checks[("war", 1.0)]["protocol_differs"] == "one split, no dev set"
    (egemaps,) = [r for r in rows if r["upstream"] == "egemaps"]
    assert egemaps["references"][0]["protocol_differs"] == "10 folds vs 5"

    md = _out(capsys, "leaderboard", "--results", str(root))
    assert "Published references:" in md
    assert "| linear/fbank   | uar      |       99.00 |    68.7 [61.3, 76.5] | below " in md
    assert md.count("| below ") == 1 and md.count("| above ") == 2
    assert "| differs: one split, no dev set |" in md
    assert "| differs: 10 folds vs 5" in md
    assert "reproduced: the published value lies inside the measured 95 % CI" in md

    table = list(csv.DictReader(io.StringIO(
        _out(capsys, "leaderboard", "--results", str(root), "--format", "csv"))))
    row = next(r for r in table if r["upstream"] == "fbank")
    assert row["published"] == f"{round(facts['war'], 2)};99.0;1.0"
    assert row["reference_verdict"] == "reproduced;below;above"
    assert row["published_metric"] == "accuracy;uar;war"

    tex = _out(capsys, "leaderboard", "--results", str(root), "--format", "latex")
    assert r"linear/fbank & uar & 99.00 &" in tex and "& below &" in tex
    page = _out(capsys, "leaderboard", "--results", str(root), "--format", "html")
    assert "<caption>Published references</caption>" in page
    assert page.count("<td>reproduced</td>") == 1


SUITE = """\
dataset: emodb
protocol: loso
budget: smoke
seeds: 3
entries:
  - methods: linear
    upstreams: [fbank, egemaps]
    references:
      - upstream: egemaps
        war: 42.5
        source: Another paper, Table 1
"""


def test_leaderboard_reads_a_suite_files_references(results, tmp_path: Path, capsys) -> None:
    root, _ = results
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    rows = json.loads(_out(capsys, "leaderboard", "--results", str(root), "--format", "json",
                           "--suite", str(suite)))
    egemaps = next(r for r in rows if r["upstream"] == "egemaps")
    assert [(c["metric"], c["published"], c["source"]) for c in egemaps["references"]] == [
        ("war", 42.5, "Another paper, Table 1"), ("uar", 30.0, "A paper, Table 2")]


@pytest.mark.parametrize("refs, expected", [
    ("      - {war: 42}\n", "entries[0].references[0].upstream: missing; the entry has several "
     "(fbank, egemaps)"),
    ("      - {upstream: fbank}\n", "entries[0].references[0]: no published value: give one of "
     "war, uar, accuracy, macro_f1 (in percent) or a gain"),
    ("      - {upstream: fbank, war: high}\n", "entries[0].references[0].war: expected a number "
     "in percent (e.g. 70.03), got 'high'"),
    ("      - {upstream: mfcc, war: 40}\n", "entries[0].references[0].upstream: 'mfcc' is not "
     "one of the entry's upstreams (fbank, egemaps)"),
    ("      - {upstream: fbank, gain: {uar: 1.5}}\n", "entries[0].references[0].over: a gain "
     "needs the baseline's options, e.g. over: {alpha: 0.0}"),
])
def test_reference_mistakes_name_the_file_and_key(tmp_path: Path, refs: str,
                                                  expected: str) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.split("      - upstream")[0] + refs)
    with pytest.raises(ConfigError) as err:
        load_suite(path, collect())
    assert str(err.value) == f"{path}: {expected}"


def test_the_seed_suite_holds_the_papers_numbers_with_sources_and_caveats() -> None:
    from serbench.run.suites import suite_references

    refs = suite_references(SUITES / "seeds_iemocap.yaml", collect())
    got = {(r.method, r.upstream, r.metric, r.value, r.gain_over is not None) for r in refs}
    assert got == {("sl_gemo", "wavlm_base_plus", "war", 83.16, False),
                   ("sl_gemo", "wavlm_base_plus", "uar", 81.43, False),
                   ("gmp_tl", "hubert_base", "war", 80.0, False),
                   ("gmp_tl", "hubert_base", "uar", 82.0, False),
                   ("contrastive_reg", "wavlm_base_plus", "war", 1.44, True),
                   ("contrastive_reg", "wavlm_base_plus", "uar", 1.53, True)}
    assert all(r.source and r.note for r in refs)
    superb = suite_references(SUITES / "superb_er.yaml", collect())
    assert len(superb) == 8 and {(r.metric, r.folds, r.protocol) for r in superb} == {
        ("accuracy", 5, "loso")}


def test_compare_checks_a_claimed_gain_against_the_measured_delta(tmp_path: Path,
                                                                  capsys) -> None:
    rng = np.random.default_rng(8)
    corpus = make_corpus(rng, n_speakers=8, per_speaker=30, n_folds=4)
    store = Store(tmp_path / "r")
    gain = _ref("fbank", "uar", 1.53, method="contrastive_reg", gain_over={"alpha": "0.0"},
                source="the contrastive paper")
    for options, skill in (({}, 1.0), ({"alpha": 0.0}, 1.0)):
        write_condition(store, corpus, simulate_predictions(corpus, skill, 3, rng),
                        "contrastive_reg", "fbank", dataset="emodb", protocol="loso",
                        options=options, extra={"references": [gain]})
    text = _out(capsys, "compare", "contrastive_reg/fbank", "contrastive_reg[alpha=0.0]/fbank",
                "--results", str(store.root))
    (line,) = [x for x in text.splitlines() if x.startswith("claimed gain")]
    assert line.startswith("claimed gain over alpha=0.0: +1.53 uar points (the contrastive "
                           "paper); measured ")
    assert line.split(": ")[-1] in ("reproduced", "below", "above")
    report = json.loads(_out(capsys, "compare", "contrastive_reg/fbank",
                             "contrastive_reg[alpha=0.0]/fbank", "--results", str(store.root),
                             "--json"))
    (claim,) = report["claimed_gains"]
    assert claim["measured_delta"] == pytest.approx(report["delta_uar"])
    assert claim["measured_delta_ci"] == pytest.approx(report["delta_uar_ci"])
    reverse = json.loads(_out(capsys, "compare", "contrastive_reg[alpha=0.0]/fbank",
                              "contrastive_reg/fbank", "--results", str(store.root), "--json"))
    assert reverse["claimed_gains"] == []


def test_a_run_planned_from_a_suite_carries_its_references(tmp_path: Path,
                                                           data_root: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("""\
dataset: emodb
budget: smoke
folds: [0]
entries:
  - methods: linear
    upstreams: fbank
    references:
      - {war: 55.5, source: EmoDB paper}
""")
    results = tmp_path / "results"
    assert main(["run", "--suite", str(suite), "--data-root", str(data_root), "--results",
                 str(results), "--quiet"]) == 0
    (record,) = [json.loads(p.read_text()) for p in results.glob("runs/*/run.json")]
    (ref,) = record["references"]
    assert (ref["method"], ref["upstream"], ref["metric"], ref["value"], ref["dataset"],
            ref["source"]) == ("linear", "fbank", "war", 55.5, "emodb", "EmoDB paper")


def test_a_plugin_method_spec_carries_references(results) -> None:
    from dataclasses import replace

    from serbench.judge.conditions import load_tables
    from serbench.judge.ranking import build
    from serbench.judge.references import attach
    from serbench.judge.references import collect as known_references

    root, _ = results
    spec = replace(collect().methods.get("linear"), references=(
        {"upstream": "egemaps", "metric": "macro_f1", "value": 47.0, "source": "plugin paper"},))
    assert collect().methods.get("linear").references == ()  # optional, empty by default
    store = Store(root)
    boards = build(load_tables(store), n_boot=200)
    conds = [c for b in boards for c in b.table.conditions]
    attach(boards, known_references(store, conds, (), {"linear": spec}))
    row = next(r for b in boards for r in b.rows if r["upstream"] == "egemaps")
    assert [(c["metric"], c["published"], c["source"]) for c in row["references"]] == [
        ("macro_f1", 47.0, "plugin paper"), ("uar", 30.0, "A paper, Table 2")]
