"""``serbench leaderboard`` on real results folders (records written through ``Store.write``)."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from serbench import __version__
from serbench.cli import main
from serbench.judge.metrics import compute_metrics
from serbench.run.budgets import PRESETS
from serbench.run.simulate import make_corpus, simulate_predictions, write_condition
from serbench.store import Store

FIXED = Path(__file__).parent / "data" / "leaderboard"
ISSUE_KEYS = {"upstream", "method", "dataset", "protocol", "budget", "runs", "uar", "uar_std",
              "uar_ci", "war", "war_std", "macro_f1", "rank"}


@pytest.fixture
def fixed(tmp_path: Path) -> Path:
    """A copy of the committed results folder (reading it builds serbench.db)."""
    return Path(shutil.copytree(FIXED / "results", tmp_path / "results"))


def _expected(name: str) -> str:
    return (FIXED / name).read_text().replace("serbench 0.1.0 ·", f"serbench {__version__} ·")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _by_hand(results: Path) -> dict[str, dict[str, list[float]]]:
    """Per condition, the metrics of every run recomputed from its predictions.jsonl."""
    out: dict[str, dict[str, list[float]]] = {}
    for run in sorted((results / "runs").iterdir()):
        rec = json.loads((run / "run.json").read_text())
        preds = [json.loads(x) for x in (run / "predictions.jsonl").read_text().splitlines()]
        labels = rec["labels"]
        m = compute_metrics([labels.index(p["label"]) for p in preds],
                            [labels.index(p["prediction"]) for p in preds], labels)
        spec = rec["spec"]
        opts = "".join(f"[{k}={v}]" for k, v in spec["options"].items())
        name = f"{spec['method']}{opts}/{spec['upstream']} {spec['budget']}"
        for key in ("uar", "war", "macro_f1"):
            out.setdefault(name, {}).setdefault(key, []).append(m[key])
    return out


def test_markdown_matches_the_expected_file(fixed: Path, capsys) -> None:
    code, out, _ = _run(capsys, "leaderboard", "--results", str(fixed))
    assert code == 0
    assert out == _expected("expected.md")


def test_markdown_with_baseline_matches_the_expected_file(fixed: Path, capsys) -> None:
    code, out, _ = _run(capsys, "leaderboard", "--results", str(fixed), "--baseline",
                        "linear/fbank", "--format", "md")
    assert code == 0
    assert out == _expected("expected_baseline.md")


def test_json_rows_hold_the_issue_keys_and_numbers_recomputed_from_predictions(
    fixed: Path, capsys
) -> None:
    code, out, _ = _run(capsys, "leaderboard", "--results", str(fixed), "--format", "json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 4
    hand = _by_hand(fixed)
    for row in rows:
        assert ISSUE_KEYS <= set(row)
        want = hand[f"{row['condition']} {row['budget']}"]
        assert row["runs"] == len(want["uar"])
        for key in ("uar", "war", "macro_f1"):
            assert row[f"{key}_runs_mean"] == pytest.approx(np.mean(want[key]))
            lo, hi = row[f"{key}_ci"]  # the interval printed beside a number is for that number
            assert 0 <= lo < row[key] < hi <= 1
        assert row["uar_std"] == pytest.approx(np.std(want["uar"], ddof=1))
        assert row["uar"] == row["uar_pooled"]
    smoke = [r for r in rows if r["budget"] == "smoke"]
    assert [(r["condition"], r["rank"], r["best"]) for r in smoke] == [
        ("mlp/fbank", 1, True), ("linear[normalize=speaker]/fbank", 2, False),
        ("linear/fbank", 3, False)]
    # Holm runs over all 3 pairs of the table (the best is picked after looking), so the 5-speaker
    # fixture's 26-point gap to linear/fbank no longer clears alpha: 3 × its raw p
    assert [r["not_worse_than_best"] for r in smoke] == [True, True, True]
    worst = smoke[2]["vs_best"]
    assert worst["p_bootstrap"] < 0.05 < worst["p_bootstrap_holm"] == pytest.approx(
        3 * worst["p_bootstrap"])


def test_conditions_under_different_budgets_are_never_ranked_together(fixed: Path, capsys) -> None:
    _, out, _ = _run(capsys, "leaderboard", "--results", str(fixed), "--format", "json")
    rows = json.loads(out)
    probe = [r for r in rows if r["budget"] == "probe"]
    assert [(r["condition"], r["rank"]) for r in probe] == [("mlp/egemaps", 1)]
    assert len({r["signature"] for r in rows}) == 2
    assert {r["budget_signature"] for r in rows} == {"b6995a11cbed", "ccb2000f23f8"}
    _, out, _ = _run(capsys, "leaderboard", "--results", str(fixed), "--budget", "probe")
    assert "mlp/fbank" not in out and out.count("### ") == 1


def test_csv_and_latex(fixed: Path, capsys) -> None:
    _, out, _ = _run(capsys, "leaderboard", "--results", str(fixed), "--format", "csv",
                     "--dataset", "simulated")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["condition"], r["budget"], r["rank"]) for r in rows] == [
        ("mlp/egemaps", "probe", "1"), ("mlp/fbank", "smoke", "1"),
        ("linear[normalize=speaker]/fbank", "smoke", "2"), ("linear/fbank", "smoke", "3")]
    assert float(rows[1]["uar_ci_low"]) < float(rows[1]["uar"]) < float(rows[1]["uar_ci_high"])
    assert [r["transductive"] for r in rows] == ["False", "False", "True", "False"]
    _, tex, _ = _run(capsys, "leaderboard", "--results", str(fixed), "--format", "latex")
    assert tex.count(r"\begin{tabular}") == 2
    assert r"\textbf{mlp/fbank} & 10 & \textbf{76.9 [61.7, 92.0]} & 1 & 79.9 $\pm$ 14.7" in tex
    assert r"linear[normalize=speaker]/fbank $\cdot$ transductive $^\dagger$ & 10 &" in tex
    assert r"loso\_speaker" in tex and "loso_speaker" not in tex


def test_output_file_and_ranking_by_another_metric(fixed: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "out" / "board.json"
    code, out, err = _run(capsys, "leaderboard", "--results", str(fixed), "--format", "json",
                          "--metric", "macro_f1", "--output", str(target))
    assert (code, out, err) == (0, "", f"wrote {target}\n")
    rows = json.loads(target.read_text())
    smoke = [r for r in rows if r["budget"] == "smoke"]
    assert [r["macro_f1"] for r in smoke] == sorted((r["macro_f1"] for r in smoke), reverse=True)
    assert all(r["metric"] == "macro_f1" for r in rows)


def test_same_seed_same_table_and_the_seed_changes_only_the_bootstrap(fixed: Path, capsys) -> None:
    outs = [_run(capsys, "leaderboard", "--results", str(fixed), "--format", "json",
                 "--seed", s)[1] for s in ("0", "0", "7")]
    assert outs[0] == outs[1]
    a, c = json.loads(outs[0]), json.loads(outs[2])
    assert [r["uar"] for r in a] == [r["uar"] for r in c]
    assert [r["uar_ci"] for r in a] != [r["uar_ci"] for r in c]


def test_clear_errors(tmp_path: Path, fixed: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run(capsys, "leaderboard", "--results", str(empty))
    assert code == 2
    assert err == (f"serbench: error: no finished runs in {empty}: run `serbench run ...` first "
                   "or point --results at another folder\n")
    code, _, err = _run(capsys, "leaderboard", "--results", str(tmp_path / "missing"))
    assert code == 2 and "does not exist" in err
    code, _, err = _run(capsys, "leaderboard", "--results", str(fixed), "--dataset", "iemocap")
    assert err == (f"serbench: error: no finished runs with dataset 'iemocap' in {fixed} "
                   "(there: simulated)\n")
    code, _, err = _run(capsys, "leaderboard", "--results", str(fixed), "--baseline", "mlp/fbnk")
    assert err == ("serbench: error: baseline 'mlp/fbnk' has no finished runs here; did you mean "
                   "'mlp/fbank'? conditions: linear/fbank, linear[normalize=speaker]/fbank, "
                   "mlp/egemaps, mlp/fbank\n")
    code, _, err = _run(capsys, "leaderboard", "--results", str(fixed), "--baseline", "linear")
    assert code == 2 and "is not METHOD/UPSTREAM" in err
    code, _, err = _run(capsys, "leaderboard", "--results", str(fixed), "--baseline", "fbank/mlp")
    assert "did you mean 'mlp/fbank'?" in err
    code, _, err = _run(capsys, "leaderboard", "--results", str(fixed), "--alpha", "1.5")
    assert err == "serbench: error: --alpha must be between 0 and 1, got 1.5\n"
    code, _, err = _run(capsys, "leaderboard", "--results", str(fixed), "--n-boot", "10")
    assert err == "serbench: error: --n-boot must be at least 100, got 10\n"


def test_rebuild_index(fixed: Path, capsys) -> None:
    Store(fixed).rebuild_index()
    (fixed / "serbench.db").unlink()
    code, out, _ = _run(capsys, "results", "rebuild-index", "--results", str(fixed))
    assert (code, out) == (0, f"indexed 35 runs in {fixed / 'serbench.db'}\n")
    assert len(Store(fixed).query(status="ok", method="mlp")) == 15


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 speakers × 30 utterances, 2 seeds: two equal strong systems and a weak one."""
    root = tmp_path_factory.mktemp("planted") / "results"
    rng = np.random.default_rng(11)
    corpus = make_corpus(rng, n_speakers=10, per_speaker=30)
    store = Store(root)
    for method, skill in (("strong", 1.5), ("twin", 1.5), ("weak", 0.0)):
        write_condition(store, corpus, simulate_predictions(corpus, skill, 2, rng), method, "wavlm")
    return root


def test_a_planted_difference_is_marked_and_an_equal_system_is_not(planted: Path, capsys) -> None:
    _, out, _ = _run(capsys, "leaderboard", "--results", str(planted), "--format", "json")
    rows = {r["method"]: r for r in json.loads(out)}
    assert rows["weak"]["rank"] == 3 and rows["weak"]["not_worse_than_best"] is False
    assert rows["weak"]["vs_best"]["p_mcnemar"] < 0.001  # descriptive: not Holm-adjusted
    assert "p_mcnemar_holm" not in rows["weak"]["vs_best"]
    assert rows["weak"]["vs_best"]["p_wilcoxon_holm"] < 0.01
    equal = rows["twin"] if rows["strong"]["best"] else rows["strong"]
    assert equal["not_worse_than_best"] is True and equal["vs_best"]["p_bootstrap_holm"] > 0.05


def test_a_condition_on_other_folds_is_ranked_but_not_tested(planted: Path, tmp_path: Path,
                                                             capsys) -> None:
    root = Path(shutil.copytree(planted, tmp_path / "r"))
    store = Store(root)
    gone = [r["run_id"] for r in store.query(method="weak", fold="3")]
    for run_id in gone:
        shutil.rmtree(root / "runs" / run_id)
    store.rebuild_index()
    _, out, _ = _run(capsys, "leaderboard", "--results", str(root))
    weak = next(line for line in out.splitlines() if line.startswith("| weak/wavlm"))
    assert weak.split("|")[2].strip() == "18"
    assert "weak/wavlm is not tested against " in out
    assert "different test sets (folds 0,1,2,4,5,6,7,8,9 vs 0,1,2,3,4,5,6,7,8,9)" in out


def test_failed_runs_are_not_counted_but_said(fixed: Path, capsys) -> None:
    store = Store(fixed)
    plain = next(r for r in store.query(method="linear") if r["options"] == {})
    ok = store.read_record(plain["run_id"])
    failed = dict(ok, run_id="00000000000000ff", status="failed", metrics=None,
                  error="RuntimeError: out of memory",
                  spec=dict(ok["spec"], seed=9))
    store.write(failed, [])
    _, out, _ = _run(capsys, "leaderboard", "--results", str(fixed), "--budget", "smoke")
    assert ("\nlinear/fbank: 1 failed run not counted (the same `serbench run` command retries "
            "them).  \n") in out
    assert "| linear/fbank †                                   |   10 |" in out


def test_predictions_are_cached_and_a_changed_file_is_checked_again(fixed: Path, capsys) -> None:
    first = _run(capsys, "leaderboard", "--results", str(fixed), "--format", "json")[1]
    cached = sorted(p.stem for p in (fixed / ".cache" / "predictions").glob("*.npz"))
    assert cached == sorted(p.name for p in (fixed / "runs").iterdir())
    assert _run(capsys, "leaderboard", "--results", str(fixed), "--format", "json")[1] == first
    run_id = json.loads(first)[0]["run_ids"][0]
    path = fixed / "runs" / run_id / "predictions.jsonl"
    lines = path.read_text().splitlines()
    tampered = json.loads(lines[0])
    tampered["prediction"] = "sad" if tampered["prediction"] != "sad" else "ang"
    path.write_text("\n".join([json.dumps(tampered, sort_keys=True), *lines[1:]]) + "\n")
    code, _, err = _run(capsys, "leaderboard", "--results", str(fixed))
    assert code == 2
    assert err == (f"serbench: error: {path} does not match the checksum in run.json: the "
                   "predictions were tampered with; delete the run and run again\n")


def test_folds_and_seeds_sort_as_numbers_in_signatures() -> None:
    from serbench.judge.names import natural

    assert sorted(["10", "2", "Ses01", 1, "03"], key=natural) == [1, "2", "03", "10", "Ses01"]


def test_html_page_has_every_table_signature_and_relative_run_links(fixed: Path, capsys) -> None:
    page = fixed / "board.html"
    assert main(["leaderboard", "--results", str(fixed), "--format", "html", "--output",
                 str(page)]) == 0
    html = page.read_text()
    assert html.count("<section") == 2 and html.count('<p class="signature">') == 2
    links = re.findall(r'href="(runs/[0-9a-f]{16}/run\.json)"', html)
    assert len(links) == 35 and all((fixed / link).is_file() for link in links)
    assert '<tr class="best">' in html and 'title="not significantly worse than the best"' in html


def _corpus_and_store(tmp_path: Path) -> tuple:
    rng = np.random.default_rng(3)
    return rng, make_corpus(rng, n_speakers=4, per_speaker=12), Store(tmp_path / "r")


def _budget(**extra: object) -> dict:
    from dataclasses import asdict

    smoke = PRESETS["smoke"]
    return {"budget": {**asdict(smoke), "signature": smoke.signature(), **extra}}


def test_runs_of_two_versions_or_twice_run_cells_are_never_pooled(tmp_path: Path, capsys) -> None:
    from dataclasses import replace

    rng, corpus, store = _corpus_and_store(tmp_path)
    pred = simulate_predictions(corpus, 1.0, 2, rng)
    write_condition(store, corpus, pred, "mlp", "fbank", created="2026-01-01T00:00:00+00:00",
                    extra={"environment": {"serbench": "0.1.0", "plugins": {"base": "1.0"}}})
    write_condition(store, corpus, pred[:1], "mlp", "fbank", created="2026-02-01T00:00:00+00:00",
                    extra={"environment": {"serbench": "0.1.0", "plugins": {"base": "1.1"}}})
    _, out, _ = _run(capsys, "leaderboard", "--results", str(store.root), "--format", "json")
    (row,) = json.loads(out)
    assert (row["runs"], row["seeds"]) == (4, 1)  # only the newest version's 4 runs
    _, md, _ = _run(capsys, "leaderboard", "--results", str(store.root))
    assert ("mlp/fbank: its runs come from different versions; kept the 4 run(s) of plugin base "
            "1.1, left out 8 of plugin base 1.0 (never pooled); to keep other ones, delete the "
            "run folders you do not want or move them to another --results folder.") in md
    # a plugin installed between the runs did not make the runs that lack it: pooled, no note
    grown = Store(tmp_path / "grown")
    write_condition(grown, corpus, pred[:1], "mlp", "fbank",
                    extra={"environment": {"serbench": "0.1.0", "plugins": {"base": "1.0"}}})
    write_condition(grown, corpus, pred[1:], "mlp", "fbank", seeds=[1],
                    extra={"environment": {"serbench": "0.1.0",
                                           "plugins": {"base": "1.0", "other": "2.0"}}})
    _, md, _ = _run(capsys, "leaderboard", "--results", str(grown.root))
    assert "| **mlp/fbank** |    8 |" in md and "different versions" not in md
    twice = Store(tmp_path / "twice")
    write_condition(twice, corpus, pred, "mlp", "fbank")
    write_condition(twice, corpus, pred[:1], "mlp", "fbank", created="2026-03-01T00:00:00+00:00",
                    budget=replace(PRESETS["smoke"], name="quick"))
    _, md, _ = _run(capsys, "leaderboard", "--results", str(twice.root))
    assert ("mlp/fbank: 4 (fold, seed) cell(s) were run more than once (budget names quick, smoke "
            "share one signature); kept the newest run of each.") in md
    assert "| **mlp/fbank** |    8 |" in md


def test_devices_and_frozen_or_fine_tuned_upstreams_never_share_a_table(tmp_path: Path,
                                                                        capsys) -> None:
    rng, corpus, store = _corpus_and_store(tmp_path)
    for method, device, frozen in (("a", "cpu", True), ("b", "cuda", True), ("c", "cuda", False)):
        write_condition(store, corpus, simulate_predictions(corpus, 1.0, 2, rng), method, "x",
                        extra=_budget(device_type=device, frozen_upstream=frozen))
    _, md, _ = _run(capsys, "leaderboard", "--results", str(store.root))
    titles = [line for line in md.splitlines() if line.startswith("### ")]
    assert titles == [
        "### simulated / loso_speaker · budget smoke · cpu · frozen upstream · SMOKE TEST (a few "
        "steps: not a result)",
        "### simulated / loso_speaker · budget smoke · cuda · fine-tuned upstream · SMOKE TEST (a "
        "few steps: not a result)",
        "### simulated / loso_speaker · budget smoke · cuda · frozen upstream · SMOKE TEST (a few "
        "steps: not a result)"]
    code, _, err = _run(capsys, "compare", "a/x", "b/x", "--results", str(store.root))
    assert code == 2 and err == (
        "serbench: error: a/x ran with cpu, frozen upstream, SMOKE TEST (a few steps: not a "
        "result) and b/x with cuda, frozen upstream, SMOKE TEST (a few steps: not a result) on "
        "simulated: they are not compared; run both on one device type with the upstream frozen "
        "(or fine-tuned) in both\n")


def test_what_was_tuned_steps_and_modality_are_shown_and_tuning_differently_is_not_tested(
    tmp_path: Path, capsys
) -> None:
    rng, corpus, store = _corpus_and_store(tmp_path)
    usage = {"steps": 40, "stopped_by": "max_steps"}
    for method, skill, extra in (
            ("emo_clap", 2.0, {"tuned": ["lr"], "usage": usage}),
            ("sl_gemo", 0.0, {"tuned": ["alpha_e"], "usage": usage}),
            ("contrastive_reg", 0.0, {"tuned": ["lr"], "modality": "audio+text",
                                      "transductive": True,
                                      "usage": {"steps": 31, "stopped_by": "max_device_seconds"}})):
        write_condition(store, corpus, simulate_predictions(corpus, skill, 2, rng), method, "w",
                        extra=extra)
    _, out, _ = _run(capsys, "leaderboard", "--results", str(store.root), "--format", "json")
    rows = {r["method"]: r for r in json.loads(out)}
    assert rows["emo_clap"]["best"] and rows["sl_gemo"]["vs_best"]["p_bootstrap"] is None
    assert rows["sl_gemo"]["not_worse_than_best"] is None
    assert rows["contrastive_reg"]["vs_best"]["p_bootstrap"] is not None
    assert (rows["contrastive_reg"]["steps_min"], rows["contrastive_reg"]["tuned"],
            rows["contrastive_reg"]["modality"]) == (31, ["lr"], "audio+text")
    _, md, _ = _run(capsys, "leaderboard", "--results", str(store.root))
    assert ("No significance mark between conditions that tuned different options: "
            "emo_clap/w (lr), sl_gemo/w (alpha_e), contrastive_reg/w (lr).") in md
    line = next(x for x in md.splitlines() if x.startswith("| contrastive_reg/w"))
    assert line.startswith("| contrastive_reg/w · transductive · audio+text")
    assert "| 31 (max_device_seconds) | lr " in line
    assert "| 40 (max_steps)          | alpha_e |" in md
