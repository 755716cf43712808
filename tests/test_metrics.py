"""Metrics against scikit-learn on random and edge cases, and by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from serbench.judge.metrics import compute_metrics

LABELS = ["ang", "hap", "neu", "sad"]


def _sk(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> dict:
    return {
        "uar": skm.balanced_accuracy_score(y_true, y_pred),
        "war": skm.accuracy_score(y_true, y_pred),
        "macro_f1": skm.f1_score(y_true, y_pred, average="macro", zero_division=0),
        "confusion": skm.confusion_matrix(y_true, y_pred, labels=list(range(k))).tolist(),
    }


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("seed", range(20))
def test_matches_sklearn_on_random_predictions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    y_true = rng.integers(0, 4, n)
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, 4, n))
    got = compute_metrics(y_true, y_pred, LABELS)
    want = _sk(y_true, y_pred, 4)
    for key in ("uar", "war", "macro_f1"):
        assert got[key] == pytest.approx(want[key], abs=1e-12), key
    assert got["confusion"] == want["confusion"]
    recall = skm.recall_score(y_true, y_pred, labels=[0, 1, 2, 3], average=None, zero_division=0)
    for k, label in enumerate(LABELS):
        if (y_true == k).any():
            assert got["per_class_recall"][label] == pytest.approx(recall[k])


def test_class_never_predicted_counts_as_zero_recall_and_f1() -> None:
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 1, 1, 1, 1]  # class 2 ("neu") never predicted
    got = compute_metrics(y_true, y_pred, LABELS)
    assert got["per_class_recall"] == {"ang": 1.0, "hap": 1.0, "neu": 0.0, "sad": None}
    assert got["uar"] == pytest.approx(2 / 3)
    assert got["war"] == pytest.approx(4 / 6)
    # F1: ang 1, hap 2*2/(2+4) = 2/3, neu 0 -> mean 5/9; "sad" occurs nowhere and is left out
    assert got["macro_f1"] == pytest.approx(5 / 9)
    assert got["macro_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_class_absent_from_test_fold_is_left_out_of_uar() -> None:
    y_true = [0, 0, 1, 1]
    y_pred = [0, 3, 1, 1]  # "sad" is predicted once but has no test example
    got = compute_metrics(y_true, y_pred, LABELS)
    assert got["per_class_recall"]["sad"] is None
    assert got["uar"] == pytest.approx((0.5 + 1.0) / 2)
    assert got["uar"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    # F1 over ang (2/3), hap (1), sad (0): the wrong "sad" prediction costs macro-F1
    assert got["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert got["macro_f1"] == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert got["confusion"] == [[1, 0, 0, 1], [0, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]


def test_perfect_and_single_class() -> None:
    assert compute_metrics([2, 2, 2], [2, 2, 2], LABELS)["uar"] == 1.0
    got = compute_metrics([1, 1, 1, 1], [1, 0, 0, 0], LABELS)
    assert (got["uar"], got["war"]) == (0.25, 0.25)


def test_bad_input_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="y_true has 2 items but y_pred has 1"):
        compute_metrics([0, 1], [0], LABELS)
    with pytest.raises(ValueError, match="no test examples"):
        compute_metrics([], [], LABELS)
    with pytest.raises(ValueError, match=r"y_pred holds class index 4 outside 0..3"):
        compute_metrics([0, 1], [0, 4], LABELS)


def test_result_is_json_ready() -> None:
    import json

    got = compute_metrics(np.array([0, 1, 2, 3]), np.array([0, 1, 2, 2]), LABELS)
    assert json.loads(json.dumps(got)) == got
    assert all(type(v) is float for v in (got["uar"], got["war"], got["macro_f1"]))
