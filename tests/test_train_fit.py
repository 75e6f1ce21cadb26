"""`train fit` end to end: the tiny model really trained on synthetic data (fixture trained_run)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.inference.modelcard import ModelCard
from train import rundir
from train.metrics import metrics_table

# The tiny model must beat the prevalence baseline's F1 on the test split for every class by
# these margins. Seen in tuning (seeds 0 and 1): crop margins 0.33-0.74, frame margins 0.2-0.6;
# the frame view has only 27 test frames (4 with class 1), so its F1 moves in coarse steps.
CROP_F1_MARGIN = 0.15
FRAME_F1_MARGIN = 0.1
DEFECT_FREE_CROP_F1_MARGIN = 0.03


@pytest.fixture(scope="module")
def card(trained_run) -> ModelCard:
    return ModelCard.load(trained_run / "modelcard.json")


def test_run_folder_has_every_output(trained_run):
    for name in ("model.keras", "modelcard.json", "splits.json", "history.csv", "scores.npz",
                 "report.md", "report.json", "training_curves.png", "f1_vs_threshold.png",
                 "confusion_matrix.png", "checkpoints/best.keras", "checkpoints/last.keras"):
        assert (trained_run / name).is_file(), name
    assert any((trained_run / "tensorboard").rglob("*tfevents*"))


def test_card_structure_used_by_the_conversion_gate(card):
    assert card.arch == "tiny"
    assert [c.id for c in card.classes] == [1, 2, 3]
    assert card.crop_label_rule["min_pixels"] == 32
    for view in ("crops", "frames"):
        table = card.metrics["test"][view]
        assert len(table["classes"]) == 3
        assert all(0.0 <= row["f1"] <= 1.0 for row in table["classes"])
        assert 0.0 <= table["defect_free"]["f1"] <= 1.0
    assert card.data["sha256"] and card.data["class_map"] == "1:1,2:2,3:3"
    assert card.training["seed"] == 0 and card.training["epochs"] == 12


@pytest.mark.parametrize(
    ("view", "margin"), [("crops", CROP_F1_MARGIN), ("frames", FRAME_F1_MARGIN)]
)
def test_tiny_model_beats_the_prevalence_baseline(card, view, margin):
    table = card.metrics["test"][view]
    for c, row in enumerate(table["classes"]):
        assert row["f1"] >= row["baseline"]["f1"] + margin, (view, c + 1, row)


def test_defect_free_crops_beat_the_baseline(card):
    free = card.metrics["test"]["crops"]["defect_free"]
    assert free["f1"] >= free["baseline"]["f1"] + DEFECT_FREE_CROP_F1_MARGIN, free
    assert free["acc"] > free["baseline"]["acc"], free


def test_card_metrics_are_those_of_the_saved_scores(trained_run, card):
    from train.assess import load_scores

    scored = load_scores(trained_run / rundir.SCORES_FILE)
    for split in ("validation", "test"):
        for view in ("crops", "frames"):
            data = scored[split][view]
            expected = metrics_table(data.labels, data.scores, card.thresholds)
            assert json.loads(json.dumps(expected)) == card.metrics[split][view]
    crops = scored["test"]["crops"]
    assert len(crops.labels) == 10 * card.data["split_sizes"]["test"]


def test_thresholds_are_the_f1_maxima_on_validation_crops(trained_run, card):
    from train.assess import load_scores

    crops = load_scores(trained_run / rundir.SCORES_FILE)["validation"]["crops"]
    for c, chosen in enumerate(card.thresholds):
        truth, scores = crops.labels[:, c], crops.scores[:, c]
        # brute force: F1 at every threshold of the grid, computed here by counting
        grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
        f1s = []
        for t in grid:
            pred = scores >= t
            tp, fp = np.sum(pred & truth), np.sum(pred & ~truth)
            fn = np.sum(~pred & truth)
            f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        f1s = np.array(f1s)
        best = np.flatnonzero(f1s >= f1s.max() - 1e-12)
        assert chosen == pytest.approx(grid[best[0]], abs=1e-9), c  # first maximum on ties
        assert f1s.max() > 0
