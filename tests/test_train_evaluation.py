"""train.evaluation with numpy predictors: which tiles, which labels, batching, frame maxima."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edge.errors import DataError, ModelError
from edge.inference.tiling import tile_frame
from train.data.crops import crop_labels
from train.data.folder import SeverstalFolder
from train.evaluation import (
    EvalSettings,
    crop_eval_set,
    crop_scores,
    evaluate_predictor,
    frame_scores,
    image_crop_boxes,
    score_split,
)
from train.metrics import metrics_table


class StatsPredictor:
    """A deterministic function of the pixels: per class a different tile statistic in [0, 1]."""

    def __init__(self, num_classes: int = 3) -> None:
        self.num_classes = num_classes
        self.batches: list[tuple] = []

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        self.batches.append((tiles.shape, tiles.dtype))
        flat = tiles.reshape(len(tiles), -1).astype(np.float32) / 255.0
        stats = [flat.mean(axis=1), flat.max(axis=1), 1.0 - flat.min(axis=1)]
        return np.stack(stats[: self.num_classes], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def folder(tiny_synth_data) -> SeverstalFolder:
    return SeverstalFolder.open(tiny_synth_data)


@pytest.fixture(scope="module")
def ids(folder) -> list[str]:
    return folder.image_ids[:10]


SETTINGS = EvalSettings(seed=11)


def test_evaluation_modules_do_not_import_tensorflow():
    code = (
        "import sys, train.evaluation, train.metrics, train.report, train.rundir, train.assess; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_crop_boxes_depend_only_on_seed_and_image(folder, ids):
    a = image_crop_boxes(ids[0], folder.height, folder.width, SETTINGS)
    b = image_crop_boxes(ids[0], folder.height, folder.width, EvalSettings(seed=11))
    c = image_crop_boxes(ids[0], folder.height, folder.width, EvalSettings(seed=12))
    assert a.shape == (10, 4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # The same image gets the same crops in any split it is evaluated with.
    alone = crop_eval_set(folder, [ids[3]], SETTINGS)
    within = crop_eval_set(folder, ids[:5], SETTINGS)
    np.testing.assert_array_equal(alone[0], within[0][30:40])


def test_crop_labels_follow_the_masks(folder, ids):
    tiles, labels = crop_eval_set(folder, ids, SETTINGS)
    assert tiles.shape == (100, 256, 256, 1) and tiles.dtype == np.uint8
    for k, image_id in enumerate(ids):
        boxes = image_crop_boxes(image_id, folder.height, folder.width, SETTINGS)
        expected = crop_labels(folder.masks(image_id), boxes, SETTINGS.min_pixels)
        np.testing.assert_array_equal(labels[10 * k : 10 * k + 10], expected)
        image = folder.read_image(image_id)
        x, y, w, h = boxes[0]
        np.testing.assert_array_equal(tiles[10 * k, ..., 0], image[y : y + h, x : x + w])
    assert labels.any(), "the tiny synthetic set has defects in its crops"


def test_crop_scores_batch_the_predictor(folder, ids):
    predictor = StatsPredictor()
    scored = crop_scores(predictor, folder, ids, SETTINGS, batch_size=16)
    tiles, labels = crop_eval_set(folder, ids, SETTINGS)
    np.testing.assert_array_equal(scored.labels, labels)
    np.testing.assert_allclose(scored.scores, StatsPredictor()(tiles), rtol=0, atol=1e-7)
    assert [shape[0] for shape, _ in predictor.batches] == [16] * 6 + [4]
    assert all(shape[1:] == (256, 256, 1) and dtype == np.uint8
               for shape, dtype in predictor.batches)
    assert scored.image_ids == [i for i in ids for _ in range(10)]


def test_frame_score_is_the_maximum_over_the_tiles(folder, ids):
    scored = frame_scores(StatsPredictor(), folder, ids, SETTINGS, batch_size=5)
    np.testing.assert_array_equal(scored.labels, folder.labels_of(ids))
    for k, image_id in enumerate(ids):
        tiles = tile_frame(folder.read_image(image_id)).stack()[..., None]
        expected = StatsPredictor()(tiles).max(axis=0)
        np.testing.assert_allclose(scored.scores[k], expected, rtol=0, atol=1e-7)


def test_evaluate_predictor_returns_both_metric_tables(folder, ids):
    thresholds = [0.5, 0.9, 0.6]
    result = evaluate_predictor(StatsPredictor(), folder, ids, thresholds, seed=11)
    scored = score_split(StatsPredictor(), folder, ids, SETTINGS)
    for view in ("crops", "frames"):
        expected = metrics_table(scored[view].labels, scored[view].scores, thresholds)
        assert result[view] == expected
    assert result["crops"]["n"] == 100 and result["frames"]["n"] == 10


def test_bad_inputs_are_one_line_errors(folder, ids):
    with pytest.raises(DataError, match="empty"):
        evaluate_predictor(StatsPredictor(), folder, [], [0.5] * 3, seed=0)
    with pytest.raises(DataError, match="nope.jpg"):
        evaluate_predictor(StatsPredictor(), folder, ["nope.jpg"], [0.5] * 3, seed=0)
    with pytest.raises(ModelError, match=r"expected \(\d+, 3\)"):
        evaluate_predictor(StatsPredictor(2), folder, ids, [0.5] * 3, seed=0)
    with pytest.raises(ModelError, match="2 thresholds for 3 classes"):
        evaluate_predictor(StatsPredictor(), folder, ids, [0.5] * 2, seed=0)
