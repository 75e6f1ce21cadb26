"""Classification metrics of the paper's Tables 2 and 3 and Fig. 2c/3, numpy only.

Shared by training evaluation and the conversion gate so both judge a model the same way.
`y_true` is a multi-hot int/bool array [n, C]; `scores` are probabilities [n, C].
"""

from __future__ import annotations

import numpy as np

DEFAULT_THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)


def binary_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """acc/prc/rcl/f1 of one binary problem; precision or recall with an empty denominator is 0."""
    truth = np.asarray(truth, dtype=bool)
    predicted = np.asarray(predicted, dtype=bool)
    tp = int(np.sum(truth & predicted))
    fp = int(np.sum(~truth & predicted))
    fn = int(np.sum(truth & ~predicted))
    tn = int(np.sum(~truth & ~predicted))
    total = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "acc": (tp + tn) / total if total else 0.0,
        "prc": precision,
        "rcl": recall,
        "f1": f1,
        "support": tp + fn,
        "n": total,
    }


def apply_thresholds(scores: np.ndarray, thresholds) -> np.ndarray:
    """Multi-hot predictions: class c is present when its score >= thresholds[c]."""
    return np.asarray(scores) >= np.asarray(thresholds, dtype=np.float32)[None, :]


def per_class_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> list[dict[str, float]]:
    """binary_metrics for each column of multi-hot arrays."""
    return [binary_metrics(y_true[:, c], y_pred[:, c]) for c in range(y_true.shape[1])]


def defect_free_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Metrics of the "defect-free" class: a sample is defect-free when no class is positive."""
    return binary_metrics(~np.any(y_true, axis=1), ~np.any(y_pred, axis=1))


def prevalence_baseline(truth: np.ndarray) -> dict[str, float]:
    """What a model that knows only the prevalence p scores on one binary problem.

    f1: always answering "present" (the best F1 a constant answer reaches, 2p/(1+p));
    acc: always answering the majority. A trained model must beat both.
    """
    truth = np.asarray(truth, dtype=bool)
    p = float(truth.mean()) if truth.size else 0.0
    return {"prevalence": p, "f1": 2 * p / (1 + p) if p else 0.0, "acc": max(p, 1 - p)}


def f1_curve(truth: np.ndarray, scores: np.ndarray, grid=DEFAULT_THRESHOLD_GRID) -> np.ndarray:
    """F1 of one class at every threshold of `grid` (paper Fig. 2c)."""
    return np.array([binary_metrics(truth, scores >= t)["f1"] for t in grid])


def best_thresholds(
    y_true: np.ndarray, scores: np.ndarray, grid=DEFAULT_THRESHOLD_GRID
) -> tuple[list[float], list[float]]:
    """Per class, the threshold of `grid` that maximises F1 (first one on ties), and that F1."""
    thresholds, best = [], []
    for c in range(y_true.shape[1]):
        curve = f1_curve(y_true[:, c], scores[:, c], grid)
        i = int(np.argmax(curve))
        thresholds.append(float(grid[i]))
        best.append(float(curve[i]))
    return thresholds, best


def single_class_confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Confusion matrix over samples with at most one true class (paper Fig. 3).

    Rows: true label (0 = defect-free, c+1 = class c). Columns: the predicted label, where a
    prediction of several classes counts in the column "several" (the last one).
    """
    n_classes = y_true.shape[1]
    keep = y_true.sum(axis=1) <= 1
    truth = np.where(y_true[keep].any(axis=1), y_true[keep].argmax(axis=1) + 1, 0)
    pred_count = y_pred[keep].sum(axis=1)
    pred = np.where(pred_count == 0, 0, y_pred[keep].argmax(axis=1) + 1)
    pred = np.where(pred_count > 1, n_classes + 1, pred)
    matrix = np.zeros((n_classes + 1, n_classes + 2), dtype=np.int64)
    np.add.at(matrix, (truth, pred), 1)
    return matrix


def metrics_table(y_true: np.ndarray, scores: np.ndarray, thresholds) -> dict:
    """Everything Tables 2 and 3 report, with the prevalence baseline beside each row."""
    y_true = np.asarray(y_true, dtype=bool)
    y_pred = apply_thresholds(scores, thresholds)
    classes = per_class_metrics(y_true, y_pred)
    for c, row in enumerate(classes):
        row["baseline"] = prevalence_baseline(y_true[:, c])
    defect_free = defect_free_metrics(y_true, y_pred)
    defect_free["baseline"] = prevalence_baseline(~y_true.any(axis=1))
    return {
        "n": int(y_true.shape[0]),
        "thresholds": [float(t) for t in thresholds],
        "classes": classes,
        "defect_free": defect_free,
        "confusion": single_class_confusion(y_true, y_pred).tolist(),
    }
