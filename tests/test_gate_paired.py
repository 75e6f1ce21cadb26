"""The paired gate statistics (edge.inference.paired) on decisions built to a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from edge.inference.paired import compare_column, compare_decisions
from train.metrics import binary_metrics

LIMIT = 0.01


def decisions(n: int, positives: int, misses: int, false_alarms: int):
    """truth and predictions of one class: `misses` positives and `false_alarms` negatives wrong."""
    truth = np.zeros(n, bool)
    truth[:positives] = True
    predicted = truth.copy()
    predicted[:misses] = False
    predicted[positives:positives + false_alarms] = True
    return truth, predicted


def test_identical_engine_passes_even_on_a_tiny_set():
    truth, reference = decisions(13, 4, 1, 1)
    column = compare_column("scratches", truth, reference, reference.copy(), max_drop=LIMIT)
    assert (column.low, column.high, column.gained, column.lost) == (0.0, 0.0, 0, 0)
    assert not column.refused and column.reason == "identical decisions on all 13 samples"


def test_f1_matches_train_metrics():
    truth, reference = decisions(430, 90, 12, 9)
    candidate = reference.copy()
    candidate[:20] = False
    column = compare_column("c", truth, reference, candidate, max_drop=LIMIT)
    assert column.reference_f1 == pytest.approx(binary_metrics(truth, reference)["f1"], abs=1e-12)
    assert column.candidate_f1 == pytest.approx(binary_metrics(truth, candidate)["f1"], abs=1e-12)
    assert (column.gained, column.lost) == (0, 8)  # 12 of the first 20 were already missed


def test_perturbed_engine_is_refused_as_a_real_drop():
    rng = np.random.default_rng(3)
    truth, reference = decisions(430, 90, 10, 10)
    candidate = reference ^ (rng.random(430) < 0.3)  # 30 % of decisions flipped
    column = compare_column("scratches", truth, reference, candidate, max_drop=LIMIT)
    assert column.refused and column.high < 0 and column.drop > 0.2
    assert "is a real drop" in column.reason and "above the limit 0.01" in column.reason


def test_one_flipped_crop_in_hundreds_is_noise_and_the_verdict_says_what_the_set_shows():
    # the demo INT8 case: 0.84 -> 0.83 on 430 crops because one true positive became a miss
    truth, reference = decisions(430, 50, 8, 8)
    candidate = reference.copy()
    candidate[10] = False
    column = compare_column("scratches", truth, reference, candidate, max_drop=LIMIT)
    assert column.drop > LIMIT  # the absolute rule would refuse it
    assert (column.gained, column.lost) == (0, 1)
    assert not column.refused and column.low < 0 <= column.high
    assert "not distinguishable from noise" in column.reason
    assert "excludes drops above" in column.reason and "cannot show smaller ones" in column.reason


def test_a_set_too_small_to_exclude_a_large_drop_is_refused():
    truth, reference = decisions(13, 4, 0, 0)
    candidate = reference.copy()
    candidate[0] = False  # one of four defective frames missed
    column = compare_column("scratches", truth, reference, candidate, max_drop=LIMIT)
    assert column.refused and column.low < -0.10
    assert "13 samples cannot exclude a drop" in column.reason and "too few" in column.reason


def test_compare_decisions_adds_the_defect_free_column():
    truth = np.array([[1, 0], [0, 0], [0, 1], [0, 0]], bool)
    columns = compare_decisions(["a", "b", "defect-free"], truth, truth, truth, max_drop=LIMIT)
    assert [c.column for c in columns] == ["a", "b", "defect-free"]
    assert all(c.reference_f1 == 1.0 and not c.refused for c in columns)
