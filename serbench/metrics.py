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


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """``(K, K)`` int64 counts, rows true class, columns predicted class."""
    t, p = _check(y_true, y_pred, n_classes)
    flat = np.bincount(t * n_classes + p, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes)


def uar_from_confusion(cm: np.ndarray) -> float:
    """Mean recall over the classes with at least one true example."""
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        raise ValueError("no test examples: UAR is undefined")
    return float(np.mean(np.diag(cm)[present] / support[present]))


def macro_f1_from_confusion(cm: np.ndarray) -> float:
    """Mean F1 over the classes that occur as truth or as prediction (0 when never right)."""
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    seen = (support + predicted) > 0
    if not seen.any():
        raise ValueError("no test examples: macro-F1 is undefined")
    f1 = 2 * tp[seen] / (support[seen] + predicted[seen])
    return float(f1.mean())


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
        "uar": uar_from_confusion(cm),
        "war": float(np.trace(cm) / cm.sum()),
        "macro_f1": macro_f1_from_confusion(cm),
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
