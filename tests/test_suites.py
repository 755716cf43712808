"""Suites: the shipped files plan what they say, every mistake is one line naming the file and the
key, a missing corpus fails before any compute, and ``serbench run --suite`` runs them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from serbench.cli import main
from serbench.registry import collect
from serbench.run.suites import load_suite
from serbench.specs import ConfigError

SUITES = Path(__file__).resolve().parents[1] / "benchmarks" / "suites"
SUPERB_WAR = {"fbank": 35.39, "wav2vec2_base": 63.43, "hubert_base": 64.92, "wavlm_base": 65.94,
              "wavlm_base_plus": 67.98, "wav2vec2_large": 65.64, "hubert_large": 67.62,
              "wavlm_large": 70.03}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def _error(path: Path, data_root: Path) -> str:
    with pytest.raises(ConfigError) as err:
        load_suite(path, collect(), data_root=data_root)
    return str(err.value)


GOOD = """\
dataset: emodb
budget: smoke
entries:
  - methods: linear
    upstreams: egemaps
"""


def test_the_emodb_suite_plans_every_method_and_the_paired_baseline(data_root: Path) -> None:
    suite = load_suite(SUITES / "emodb.yaml", collect(), data_root=data_root)
    assert suite.name == "emodb" and suite.runs == 140
    cells = {(r.spec.method, r.spec.upstream, tuple(sorted(r.spec.options.items())))
             for p in suite.plans for r in p.plan.runs}
    methods = {c[0] for c in cells}
    assert methods == {"linear", "mlp", "emo_clap", "ml_gemo", "sl_gemo", "gmp_tl",
                       "contrastive_reg"}
    baseline = [r for p in suite.plans for r in p.plan.runs if r.spec.options.get("alpha") == 0.0]
    assert len(baseline) == 20 and {r.spec.upstream for r in baseline} == {"egemaps", "fbank"}
    budgets = {p.plan.budget for p in suite.plans}
    assert len(budgets) == 1
    budget = budgets.pop()
    assert (budget.name, budget.max_steps, budget.max_device_seconds) == ("emodb_cpu", 100, 600.0)
    folds = {r.spec.fold for p in suite.plans for r in p.plan.runs}
    assert len(folds) == 10
    assert all(r.spec.options["normalize"] == "speaker" for p in suite.plans for r in p.plan.runs)
    # planning read the manifest, checked the folds and hashed the audio (the runs' data
    # fingerprint, memoised in file-digests.sqlite), but computed no features
    cache = Path(os.environ["SERBENCH_CACHE"])
    assert sorted(p.name for p in cache.iterdir()) == ["file-digests.sqlite", "manifests"]


def test_superb_suite_carries_the_published_column_and_fails_without_iemocap(
        data_root: Path) -> None:
    import yaml

    raw = yaml.safe_load((SUITES / "superb_er.yaml").read_text())
    entry = raw["entries"][0]
    assert {r["upstream"]: r["accuracy"] for r in entry["references"]} == SUPERB_WAR
    assert {r["protocol"]["folds"] for r in entry["references"]} == {5}
    assert entry["upstreams"] == list(SUPERB_WAR)
    assert (raw["dataset"], raw["protocol"], raw["budget"], raw["seeds"]) == (
        "iemocap", "loso", "probe", 3)
    assert raw["options"] == {"normalize": "none"}  # SUPERB normalised nothing
    message = _error(SUITES / "superb_er.yaml", data_root)
    assert message.startswith(f"{SUITES / 'superb_er.yaml'}: entries[0]: dataset 'iemocap': ")
    assert "point --data-root at IEMOCAP_full_release/" in message


def test_seeds_suite_names_resolve_and_missing_data_says_how_to_get_it() -> None:
    import yaml

    raw = yaml.safe_load((SUITES / "seeds_iemocap.yaml").read_text())
    assert (raw["budget"], raw["seeds"]) == ("finetune", 5)
    with pytest.raises(ConfigError) as err:
        load_suite(SUITES / "seeds_iemocap.yaml", collect())
    assert str(err.value).startswith(
        f"{SUITES / 'seeds_iemocap.yaml'}: entries[0]: no data root for dataset 'iemocap': "
        "pass --data-root DIR or set SERBENCH_DATA; IEMOCAP is licensed")


@pytest.mark.parametrize("text, expected", [
    (GOOD + "colour: blue\n",
     "colour: unknown key (known: suite, description, dataset, protocol, dataset_options, "
     "budget, budgets, seeds, folds, options, with_baseline, entries, test_dataset, "
     "test_dataset_options, cross_labels)"),
    (GOOD.replace("upstreams: egemaps", "upstreams: egemaps\n    optoins: {lr: 0.1}"),
     "entries[0].optoins: unknown key (known: methods, upstreams, options, published, references, "
     "dataset, protocol, dataset_options, budget, seeds, folds, with_baseline, test_dataset, "
     "test_dataset_options, cross_labels)"),
    (GOOD + "seeds: three\n",
     "entries[0].seeds: expected a positive count or a list of distinct seeds from 0 to "
     "2147483647, got 'three'"),
    (GOOD + "folds: 3\n", "entries[0].folds: expected a list of fold names or indices, got 3"),
    (GOOD.replace("methods: linear", "methods: [linear, 3]"),
     "entries[0].methods: expected a name or a non-empty list of names, got ['linear', 3]"),
    (GOOD.replace("methods: linear", "methods: linaer"),
     "entries[0]: unknown method 'linaer': did you mean 'linear'?"),
    (GOOD + "    options: {lr: [1, 2]}\n",
     "entries[0].options.lr: expected a number, string or boolean, got a list ([1, 2])"),
    (GOOD + "    options: {hiden: 64}\n",
     "entries[0]: method 'linear' has no option 'hiden'; did you mean 'hidden'?"),
    (GOOD.replace("budget: smoke", "budget: smokey"),
     "entries[0].budget: unknown budget 'smokey': did you mean 'smoke'? (or define it in a YAML "
     "file with --budgets)"),
    (GOOD.replace("budget: smoke", "budget: {base: smoke, max_steps: -3}"),
     "entries[0].budget: max_steps must be a positive integer, got -3"),
    (GOOD + "    with_baseline: true\n", "entries[0].with_baseline: none of linear declares a "
     "baseline"),
    (GOOD + "    published: {metric: war, values: {fbank: 35.39}}\n",
     "entries[0].published.values.fbank: not an upstream of this entry"),
    (GOOD.replace("dataset: emodb\n", ""),
     "entries[0].dataset: missing (set it at the top or in the entry)"),
    ("- just a list\n", "expected a mapping with an 'entries' list, got a list (['just a list'])"),
])
def test_mistakes_are_one_line_naming_the_file_and_key(tmp_path: Path, data_root: Path,
                                                       text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    message = _error(path, data_root)
    assert message in (f"{path}: {expected}", f"suite file {path}: {expected}")


def test_inline_budgets_seed_lists_folds_and_option_overrides(tmp_path: Path,
                                                              data_root: Path) -> None:
    path = _write(tmp_path, """\
suite: tiny
dataset: emodb
budgets:
  quick: {base: smoke, max_steps: 7}
budget: quick
seeds: [3, 5]
folds: ["03", 1]
options: {normalize: speaker}
entries:
  - methods: [linear, mlp]
    upstreams: [egemaps]
    options: {normalize: none, hidden: 32}
  - methods: contrastive_reg
    upstreams: fbank
    budget: {base: smoke, max_device_seconds: 30}
    seeds: 1
    with_baseline: true
""")
    suite = load_suite(path, collect(), data_root=data_root)
    first, second, baseline = (p.plan for p in suite.plans)
    assert suite.name == "tiny" and suite.runs == 2 * 2 * 2 + 2 + 2
    assert first.budget.max_steps == 7 and first.budget.name == "quick"
    assert {(r.spec.seed, r.spec.fold) for r in first.runs} == {(3, "03"), (5, "03"), (3, "08"),
                                                                 (5, "08")}
    assert first.runs[0].spec.options == {"normalize": "none", "hidden": 32}
    assert second.budget.max_device_seconds == 30.0 and second.budget.max_steps == 40
    assert second.runs[0].spec.options == {"normalize": "speaker"}
    assert baseline.runs[0].spec.options == {"normalize": "speaker", "alpha": 0.0}
    assert [r.spec.fold for r in baseline.runs] == [r.spec.fold for r in second.runs]


def test_run_suite_on_the_command_line(tmp_path: Path, data_root: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, GOOD + "folds: [0]\n")
    results = tmp_path / "results"
    assert main(["run", "--suite", str(path), "--data-root", str(data_root), "--dry-run",
                 "--json", "--results", str(results)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["method"], r["upstream"], r["fold"], r["status"]) for r in rows] == [
        ("linear", "egemaps", "03", "to run")]
    assert main(["run", "--suite", str(path), "--method", "mlp"]) == 2
    assert capsys.readouterr().err.strip() == (
        "serbench: error: --suite replaces --method, --upstream and --dataset; give one or the "
        "other")
    assert main(["run", "--method", "linear", "--upstream", "egemaps", "--dataset", "emodb",
                 "--data-root", str(data_root), "--with-baseline", "--dry-run"]) == 2
    assert capsys.readouterr().err.strip() == (
        "serbench: error: --with-baseline: none of linear declares a paired baseline")


def test_the_summary_lists_plans_and_the_published_column(tmp_path: Path,
                                                          data_root: Path) -> None:
    path = _write(tmp_path, """\
description: probes
dataset: emodb
budget: smoke
folds: [0, 1]
entries:
  - methods: linear
    upstreams: [fbank, egemaps]
    published: {metric: uar, source: a paper, values: {fbank: 50.5}}
""")
    assert load_suite(path, collect(), data_root=data_root).summary() == [
        f"suite suite ({path}): probes",
        "  entries[0]: linear × fbank, egemaps: 4 runs, budget smoke",
        "    published uar (a paper): fbank 50.5",
    ]
