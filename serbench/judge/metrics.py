"""Classification metrics of one run: UAR (primary), WAR, macro-F1, per-class recall, confusion.

Pure numpy, so the referee's numbers do not depend on a scikit-learn version. Edge cases follow
scikit-learn's defaults (``tests/test_metrics.py`` checks them against it):

- **UAR** (unweighted average recall) is the mean recall over the classes *present in y_true*, as
  ``sklearn.metrics.balanced_accuracy_score``: a class missing from a test fold has no recall and
  is left out rather than counted as 0 or 1.
- **WAR** (weighted average recall) is plain accuracy.
- **macro-F1** averages F1 over the classes present in y_true *or* y_pred, as
  ``f1_score(average="macro", zero_division=0)``: a class that is never predicted scores F1 = 0, and
  a class predicted but absent from y_true scores F1 = 0 too (all its predictions are wrong).
- **per-class recall** maps every label to its recall, or to ``None`` when the class does not occur
  in y_true (JSON ``null``: no recall exists, and ``NaN`` is not valid JSON).
- **confusion** is a ``K × K`` list of counts over all ``labels``, rows true, columns predicted.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

METRICS = ("uar", "war", "macro_f1")


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """``(K, K)`` int64 counts, rows true class, columns predicted class."""
    t, p = _check(y_true, y_pred, n_classes)
    flat = np.bincount(t * n_classes + p, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes)


def metric_from_confusion(cm: np.ndarray, metric: str) -> np.ndarray | float:
    """``uar``, ``war`` or ``macro_f1`` of confusion matrices ``(..., K, K)``, vectorised.

    Counts may be fractional (predictions averaged over seeds). The statistics call this on
    thousands of bootstrap confusions at once; a replicate whose classes are all absent gets NaN.
    """
    cm = np.asarray(cm, dtype=float)
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "war":
            out = tp.sum(axis=-1) / support.sum(axis=-1)
        elif metric == "uar":
            out = _mean_where(tp / support, support > 0)
        else:
            both = support + cm.sum(axis=-2)
            out = _mean_where(2 * tp / both, both > 0)
    return float(out) if np.ndim(out) == 0 else out


def _mean_where(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    n = keep.sum(axis=-1)
    total = np.where(keep, values, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def compute_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]
) -> dict[str, Any]:
    """All metrics of one run, as stored under ``metrics`` in ``run.json``.

    ``y_true`` and ``y_pred`` are class indices into ``labels``. UAR averages recall over the
    classes present in ``y_true`` (like scikit-learn's ``balanced_accuracy_score``); see the
    module docstring for every edge case.
    """
    cm = confusion_matrix(y_true, y_pred, len(labels))
    support = cm.sum(axis=1)
    recall = {
        label: (float(cm[k, k] / support[k]) if support[k] else None)
        for k, label in enumerate(labels)
    }
    return {
        "uar": metric_from_confusion(cm, "uar"),
        "war": metric_from_confusion(cm, "war"),
        "macro_f1": metric_from_confusion(cm, "macro_f1"),
        "per_class_recall": recall,
        "confusion": cm.tolist(),
    }


def _check(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> tuple[Any, Any]:
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} items but y_pred has {p.size}")
    if t.size == 0:
        raise ValueError("no test examples: metrics are undefined")
    if n_classes < 1:
        raise ValueError("labels is empty")
    for name, a in (("y_true", t), ("y_pred", p)):
        bad = a[(a < 0) | (a >= n_classes)]
        if bad.size:
            raise ValueError(f"{name} holds class index {int(bad[0])} outside 0..{n_classes - 1} "
                             f"(labels has {n_classes} classes)")
    return t, p
