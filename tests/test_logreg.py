"""``logreg``: the convex fit the harness runs equals scikit-learn's on the same pooled features of
a real EmoDB fold; every L-BFGS iteration is a counted step; options fail as one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from serbench import Budget, ConfigError
from serbench.data.features import cached_features
from serbench.data.feeds import CachedFeed
from serbench.judge.metrics import compute_metrics
from serbench.registry import collect
from serbench.run.execution import execute_run
from serbench.run.planning import make_plan

GRID = [0.001, 0.01, 0.1, 1.0, 10.0]


def _run(data_root: Path, max_steps: int) -> tuple:
    """One real run of ``logreg`` on EmoDB fold 0 (test speaker 03), fbank, speaker-normalised."""
    budget = Budget("t", max_steps=max_steps, batch_seconds=60.0, max_device_seconds=600.0,
                    eval_every=100)
    plan = make_plan(collect(), methods=["logreg"], upstreams=["fbank"], dataset="emodb",
                     data_root=data_root, budget=budget, folds=["0"],
                     options={"normalize": "speaker"})
    run_record, predictions = execute_run(plan, plan.runs[0], torch.device("cpu"))
    record = run_record.to_json()
    return plan, record, predictions


def _arrays(plan, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The same pooled, speaker-normalised features the run trained on, from the harness's feed."""
    data = plan.dataset
    entry = cached_features(collect().upstreams.get("fbank"), "emodb", data.root,
                            data.utterances, "cpu", need_frames=False, quiet=True)
    by_key = {u.key: u for u in data.utterances}
    fold = data.folds[plan.runs[0].spec.fold]
    splits = {s: [by_key[k] for k in getattr(fold, s)] for s in ("train", "dev", "test")}
    feed = CachedFeed(entry, splits, {lab: i for i, lab in enumerate(data.labels)}, 60.0,
                      pooled=True, normalize="speaker")
    batches = list(feed.evaluate(split))
    return (np.concatenate([b.stacked[:, -1, 0].double().numpy() for b in batches]),
            np.concatenate([b.labels.numpy() for b in batches]),
            [k for b in batches for k in b.keys])


def _objective(model: LogisticRegression, x: np.ndarray, y: np.ndarray, c: float) -> float:
    """scikit-learn's objective divided by N: mean cross-entropy + ||W||² / (2 C N)."""
    logp = model.predict_log_proba(x)
    return float(-logp[np.arange(len(y)), y].mean() + (model.coef_ ** 2).sum() / (2 * c * len(y)))


@pytest.mark.slow
def test_logreg_equals_scikit_learn_on_a_real_emodb_fold(data_root: Path) -> None:
    plan, record, predictions = _run(data_root, max_steps=2000)
    usage, info = record["usage"], record["method_info"]["logreg"]
    fits = info["fits"]
    # every C of the grid fitted to its tolerance, strongest first; each iteration one step
    assert [f["c"] for f in fits] == GRID and all(f["converged"] for f in fits)
    assert usage["stopped_by"] == "converged"
    assert usage["steps"] == sum(f["iterations"] for f in fits)
    assert (info["n_train"], info["n_dev"]) == (record["n_train"], record["n_dev"])
    x_tr, y_tr, _ = _arrays(plan, "train")
    x_dev, y_dev, _ = _arrays(plan, "dev")
    x_te, y_te, keys = _arrays(plan, "test")
    labels = plan.dataset.labels
    theirs = {}
    for fit in fits:
        model = LogisticRegression(C=fit["c"], tol=1e-10, max_iter=10000).fit(x_tr, y_tr)
        theirs[fit["c"]] = model
        # ours stops once every gradient entry is <= 1e-6 (|g|² <= 567e-12 over 7 x 81
        # parameters); the penalty makes the objective (1/(C N))-strongly convex in W, so that
        # point is within |g|² C N / 2 <= 1.3e-6 of the minimum at C = 10, N = 428
        assert fit["objective"] == pytest.approx(_objective(model, x_tr, y_tr, fit["c"]),
                                                 abs=1.3e-6)
        dev = compute_metrics(y_dev.tolist(), model.predict(x_dev).tolist(), labels)["uar"]
        assert fit["dev_uar"] == pytest.approx(dev, abs=1e-6)
    best = max(GRID, key=lambda c: (next(f["dev_uar"] for f in fits if f["c"] == c), -c))
    assert info["chosen_c"] == best
    ours = {p["key"]: labels.index(p["prediction"]) for p in predictions}
    sk = dict(zip(keys, theirs[best].predict(x_te).tolist(), strict=True))
    assert sorted(ours) == sorted(sk) and len(ours) == 49
    assert ours == sk  # at the same minimum the same class wins for every test utterance
    sk_uar = compute_metrics(y_te.tolist(), [sk[k] for k in keys], labels)["uar"]
    assert record["metrics"]["uar"] == pytest.approx(sk_uar, abs=1e-9)


@pytest.mark.slow
def test_logreg_stops_at_the_step_limit_with_the_best_finished_fit(data_root: Path) -> None:
    _, record, _ = _run(data_root, max_steps=40)
    usage, info = record["usage"], record["method_info"]["logreg"]
    assert usage["stopped_by"] == "max_steps" and usage["steps"] == 40
    fits = info["fits"]
    assert 1 <= len(fits) < len(GRID) and sum(f["iterations"] for f in fits) <= 40
    assert info["chosen_c"] == max(fits, key=lambda f: f["dev_uar"])["c"]


def test_logreg_options_fail_as_one_line() -> None:
    from serbench import BuildContext, DatasetSpec, UpstreamSpec

    spec = collect().methods.get("logreg")
    upstream = UpstreamSpec(name="tiny", loader=lambda device: None, num_layers=3, hidden_size=4)
    dataset = DatasetSpec(name="toy", labels=("a", "b"), protocols={"loso": ""},
                          load_manifest=lambda root, opts: [], folds=lambda u, p, o: [])

    def build(**options):
        return spec.build(BuildContext(
            labels=("a", "b"), options={**spec.defaults, **options}, upstream=upstream,
            dataset=dataset, device="cpu", seed=0, finetune_upstream=False,
            load_upstream=lambda: None, text_encoder=lambda name: None))

    assert spec.inputs == "pooled" and spec.defaults["c_values"] == "0.001,0.01,0.1,1,10"
    with pytest.raises(ConfigError, match=r"^method logreg: option layer must be 'last' or a "
                                          r"layer index \(a learnt layer weighting would make "
                                          r"the problem non-convex\)$"):
        build(layer="weighted")
    with pytest.raises(ConfigError, match=r"option c_values must be comma-separated positive "
                                          r"inverse regularisation strengths like 0.01,0.1,1, "
                                          r"got '0.1,-1'"):
        build(c_values="0.1,-1")
    assert build(layer="1").grid == tuple(GRID)


def test_logreg_passes_the_method_checks_outside_the_loop() -> None:
    from serbench.testing import check_method

    checks = check_method(collect().methods.get("logreg"))
    assert [(c.name, c.ok) for c in checks] == [
        ("build", True), ("loss is a finite scalar", True),
        ("gradients reach trainable parameters", True),
        ("predict gives (B, C) finite scores", True),
        ("padding does not change predictions", True), ("loss falls on a separable batch", True),
        ("reads only the layer its option layer names", True)]
