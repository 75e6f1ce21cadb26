"""Metrics against hand-computed cases."""

import numpy as np
import pytest

from train.metrics import (
    best_thresholds,
    binary_metrics,
    defect_free_metrics,
    metrics_table,
    prevalence_baseline,
    single_class_confusion,
)


def test_binary_metrics_hand_computed():
    truth = [1, 1, 1, 0, 0, 0, 0, 1]
    pred = [1, 1, 0, 1, 0, 0, 0, 0]
    # tp=2 fp=1 fn=2 tn=3
    m = binary_metrics(truth, pred)
    assert m["acc"] == pytest.approx(5 / 8)
    assert m["prc"] == pytest.approx(2 / 3)
    assert m["rcl"] == pytest.approx(2 / 4)
    assert m["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert m["support"] == 4


def test_no_positive_predictions_gives_zero_not_nan():
    m = binary_metrics([1, 0], [0, 0])
    assert (m["prc"], m["rcl"], m["f1"]) == (0.0, 0.0, 0.0)


def test_defect_free_is_no_class_positive():
    y_true = np.array([[0, 0], [1, 0], [0, 0], [0, 1]], dtype=bool)
    y_pred = np.array([[0, 0], [0, 0], [1, 0], [0, 1]], dtype=bool)
    # defect-free truth: T F T F ; predicted: T T F F -> tp=1 fp=1 fn=1 tn=1
    m = defect_free_metrics(y_true, y_pred)
    assert (m["prc"], m["rcl"], m["acc"]) == (0.5, 0.5, 0.5)


def test_prevalence_baseline():
    b = prevalence_baseline([1, 0, 0, 0])
    assert b["prevalence"] == 0.25
    assert b["f1"] == pytest.approx(2 * 0.25 / 1.25)
    assert b["acc"] == 0.75


def test_best_threshold_is_the_f1_maximum():
    y_true = np.array([[1], [1], [0], [0], [1]], dtype=bool)
    scores = np.array([[0.9], [0.35], [0.3], [0.1], [0.6]], dtype=np.float32)
    thresholds, best = best_thresholds(y_true, scores, grid=np.array([0.2, 0.32, 0.5, 0.7]))
    # 0.32 separates perfectly; 0.2 adds a false positive; 0.5 misses one
    assert thresholds == [0.32]
    assert best == [1.0]


def test_single_class_confusion_rows_and_several_column():
    y_true = np.array([[0, 0], [1, 0], [1, 0], [0, 1], [1, 1]], dtype=bool)
    y_pred = np.array([[0, 0], [1, 0], [1, 1], [1, 0], [1, 1]], dtype=bool)
    matrix = single_class_confusion(y_true, y_pred)
    # the two-class sample is left out; columns: none, c1, c2, several
    assert matrix.tolist() == [[1, 0, 0, 0], [0, 1, 0, 1], [0, 1, 0, 0]]


def test_metrics_table_shape():
    y_true = np.array([[1, 0], [0, 0], [0, 1]], dtype=bool)
    scores = np.array([[0.8, 0.1], [0.2, 0.3], [0.1, 0.9]], dtype=np.float32)
    table = metrics_table(y_true, scores, [0.5, 0.5])
    assert [c["f1"] for c in table["classes"]] == [1.0, 1.0]
    assert table["defect_free"]["f1"] == 1.0
    assert table["classes"][0]["baseline"]["prevalence"] == pytest.approx(1 / 3)
