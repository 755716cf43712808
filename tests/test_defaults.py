"""Defaults that give real results, and the record fields that disclose how a run was made."""

from __future__ import annotations

from pathlib import Path

import pytest
from scale_helpers import warm_cache

from serbench.judge.metrics import compute_metrics
from serbench.registry import collect
from serbench.run.budgets import PRESETS
from serbench.run.devices import resolve_device
from serbench.run.execution import execute_run
from serbench.run.planning import make_plan
from serbench.specs import Budget, ConfigError, MethodSpec

FROZEN_CLAP = {"text_encoder": "minilm", "finetune_upstream": "false"}


def test_the_default_budget_is_the_methods_natural_one(data_root: Path) -> None:
    comps = collect()

    def plan(methods: list[str], **options: str):  # planned only: no weights are loaded
        return make_plan(comps, methods=methods, upstreams=["hubert_base"], dataset="emodb",
                         data_root=data_root, folds=["0"], options=options)

    assert plan(["linear", "mlp"]).budget is PRESETS["probe"]
    assert plan(["emo_clap"], text_encoder="minilm").budget is PRESETS["finetune"]
    assert plan(["emo_clap"], **FROZEN_CLAP).budget is PRESETS["probe"]
    with pytest.raises(ConfigError) as err:
        plan(["linear", "finetune"])
    assert str(err.value) == (
        "finetune fine-tune their upstream (natural budget finetune) and linear train on frozen "
        "features (natural budget probe); one comparison runs under one budget: pass --budget "
        "probe, finetune or smoke")


def test_normalize_defaults_to_training_statistics_on_frozen_features_only(
        data_root: Path) -> None:
    comps = collect()

    def options(method: str, **opts: str) -> dict:
        plan = make_plan(comps, methods=[method], upstreams=["hubert_base"], dataset="emodb",
                         data_root=data_root, folds=["0"], budget="smoke", options=opts)
        return plan.runs[0].condition.options

    assert options("linear")["normalize"] == "global"
    assert options("emo_clap", **FROZEN_CLAP)["normalize"] == "global"
    assert options("emo_clap", text_encoder="minilm")["normalize"] == "none"  # fine-tuned
    with pytest.raises(ConfigError, match="normalize=speaker applies to frozen features only"):
        options("emo_clap", text_encoder="minilm", normalize="speaker")


def test_every_method_declares_what_it_tunes() -> None:
    registry = collect().methods
    first_party = ("linear", "mlp", "finetune", "emo_clap", "ml_gemo", "sl_gemo",
                   "contrastive_reg", "gmp_tl")
    assert {n: registry.get(n).tunes for n in first_party} == {
        "linear": ("lr",), "mlp": ("lr",), "finetune": ("upstream_lr",),
        "emo_clap": ("lr",), "ml_gemo": ("lr",), "sl_gemo": ("lr",),
        "contrastive_reg": ("lr",), "gmp_tl": (),
    }
    # what a method tunes is its search space, so the two can never disagree
    assert MethodSpec(name="x", build=print, search_space={"wd": (0, 1), "lr": (1,)}).tunes == (
        "lr", "wd")


def _trials_run(data_root: Path, method: str, max_trials: int,
                options: dict[str, str]) -> tuple[Budget, dict]:
    """One 4-step run on fbank, fold 0, with a trial search of ``max_trials``."""
    budget = Budget("tiny", max_steps=4, batch_seconds=60.0, max_device_seconds=60.0,
                    max_trials=max_trials, eval_every=2)
    plan = make_plan(collect(), methods=[method], upstreams=["fbank"], dataset="emodb",
                     data_root=data_root, folds=["0"], budget=budget, seeds=1, options=options)
    return budget, execute_run(plan, plan.runs[0], resolve_device("cpu"))[0].to_json()


@pytest.mark.usefixtures(warm_cache.__name__)
def test_a_run_records_device_frozenness_tuning_modality_and_transduction(
        data_root: Path) -> None:
    budget, record = _trials_run(data_root, "mlp", 2, {"normalize": "speaker"})
    b = record["budget"]
    assert (b["device_type"], b["frozen_upstream"]) == ("cpu", True)
    assert b["signature"] == budget.signature(device_type="cpu", frozen_upstream=True)
    assert b["signature"] != budget.signature(device_type="cuda", frozen_upstream=True)
    assert b["signature"] != budget.signature(device_type="cpu", frozen_upstream=False)
    assert record["tuned"] == ["lr"] and len(record["usage"]["trials"]) == 2
    assert record["modality"] == "audio" and record["transductive"] is True
    usage = record["usage"]
    assert usage["build_seconds"] >= 0 and usage["predict_seconds"] > 0  # a head builds in µs
    assert usage["device_seconds"] >= (usage["build_seconds"] + usage["eval_seconds"]
                                       + usage["predict_seconds"])


@pytest.mark.usefixtures(warm_cache.__name__)
def test_options_the_user_fixed_are_not_searched(data_root: Path) -> None:
    _, record = _trials_run(data_root, "linear", 3, {"lr": "0.01"})
    # lr is linear's only tuned option: with it fixed there is nothing to search, one trial
    assert record["tuned"] == [] and "trials" not in record["usage"]
    assert record["usage"]["steps"] == 4
    assert record["transductive"] is False  # normalize=global by default


@pytest.mark.slow
def test_every_method_that_runs_on_egemaps_beats_twice_chance_under_smoke(
        data_root: Path) -> None:
    """eGeMAPS functionals differ by orders of magnitude in scale: unnormalised, the probes
    sat at chance (UAR 0.17 with 7 classes); the default normalisation must avoid that."""
    comps = collect()
    device = resolve_device("cpu")
    cases = {"linear": {}, "mlp": {}, "contrastive_reg": {}, "emo_clap": FROZEN_CLAP,
             "ml_gemo": FROZEN_CLAP, "sl_gemo": FROZEN_CLAP}
    pooled = {}
    for method, options in cases.items():
        plan = make_plan(comps, methods=[method], upstreams=["egemaps"], dataset="emodb",
                         data_root=data_root, folds=["0", "1"], budget="smoke", seeds=1,
                         options=options)
        truth: list[str] = []
        guess: list[str] = []
        for run in plan.runs:
            run_record, predictions = execute_run(plan, run, device)
            record = run_record.to_json()
            assert record["modality"] == ("audio+text" if method == "contrastive_reg"
                                          else "audio")
            truth += [p["label"] for p in predictions]
            guess += [p["prediction"] for p in predictions]
        labels = plan.dataset.labels
        index = {lab: i for i, lab in enumerate(labels)}
        pooled[method] = compute_metrics([index[t] for t in truth], [index[g] for g in guess],
                                         labels)["uar"]
    assert all(uar >= 2 / 7 for uar in pooled.values()), pooled
