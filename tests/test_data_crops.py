"""Crop labels from summed-area tables against a brute-force count."""

import numpy as np
import pytest

from train.data.crops import (
    DEFAULT_MIN_PIXELS,
    crop_labels,
    crop_pixel_counts,
    random_boxes,
    summed_area_tables,
)


def _random_masks(rng, shape):
    masks = np.zeros(shape, dtype=bool)
    for c in range(shape[0]):
        for _ in range(5):
            y, x = rng.integers(0, shape[1]), rng.integers(0, shape[2])
            h, w = rng.integers(1, 40), rng.integers(1, 60)
            masks[c, y : y + h, x : x + w] = True
    return masks


@pytest.mark.parametrize("min_pixels", [1, DEFAULT_MIN_PIXELS, 500])
def test_crop_labels_match_brute_force(min_pixels):
    rng = np.random.default_rng(5)
    masks = _random_masks(rng, (3, 96, 300))
    boxes = np.concatenate(
        [
            random_boxes(rng, 96, 300, 40, tile=64),
            [[0, 0, 300, 96], [299, 95, 1, 1], [10, 20, 7, 3]],
        ]
    )
    expected_counts = np.array(
        [[m[y : y + h, x : x + w].sum() for m in masks] for x, y, w, h in boxes]
    )
    np.testing.assert_array_equal(crop_pixel_counts(masks, boxes), expected_counts)
    np.testing.assert_array_equal(
        crop_labels(masks, boxes, min_pixels), expected_counts >= min_pixels
    )
    table = summed_area_tables(masks)
    np.testing.assert_array_equal(
        crop_labels(masks, boxes, min_pixels, table=table), expected_counts >= min_pixels
    )
    assert (
        0 < (expected_counts >= min_pixels).sum() < expected_counts.size
    )  # the case is not trivial


def test_min_pixels_boundary():
    masks = np.zeros((1, 256, 512), dtype=bool)
    masks[0, 10, 250:262] = True  # 12 px, 6 on each side of x = 256
    boxes = np.array([[0, 0, 256, 256], [256, 0, 256, 256], [6, 0, 256, 256]])
    assert crop_labels(masks, boxes, 6)[:, 0].tolist() == [True, True, True]
    assert crop_labels(masks, boxes, 7)[:, 0].tolist() == [False, False, True]


def test_random_boxes_inside_and_deterministic():
    boxes = random_boxes(np.random.default_rng(1), 256, 1600, 500)
    again = random_boxes(np.random.default_rng(1), 256, 1600, 500)
    np.testing.assert_array_equal(boxes, again)
    assert boxes[:, 0].min() >= 0 and (boxes[:, 0] + 256).max() <= 1600
    assert (boxes[:, 1] == 0).all() and (boxes[:, 2:] == 256).all()
    assert len(np.unique(boxes[:, 0])) > 300  # spread over the width


def test_box_outside_the_image_is_rejected():
    with pytest.raises(ValueError, match=r"\[1500, 0, 256, 256\] is not inside the 1600x256 image"):
        crop_labels(np.zeros((1, 256, 1600), bool), np.array([[1500, 0, 256, 256]]))
