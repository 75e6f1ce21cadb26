"""Labels of crops (tiles) of an image: the crop-label rule.

A class is present in a crop when at least `min_pixels` of its mask pixels fall inside the crop.

Why DEFAULT_MIN_PIXELS = 32: the smallest defects are class-I rolled-in scale spots of a few
dozen pixels (a round spot 7-8 px across covers ~40-50 px). With K = 32 such a spot counts when
about two thirds or more of it is inside the crop, i.e. when it is still recognisable as a spot.
A large defect (a scratch, a rolling film) cut by the crop border is labelled present once its
visible part reaches 32 px, e.g. a 2 px wide, 16 px long sliver; anything smaller is not visually
identifiable and would teach the model to fire on texture. K = 1 (any overlap) would label such
slivers; K in the hundreds would miss whole class-I spots.
"""

from __future__ import annotations

import numpy as np

DEFAULT_MIN_PIXELS = 32
DEFAULT_TILE = 256


def summed_area_tables(masks: np.ndarray) -> np.ndarray:
    """int32 [C, H+1, W+1]: table[c, y, x] = mask pixels of class c in rows < y, columns < x."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be [C, H, W], got shape {masks.shape}")
    channels, height, width = masks.shape
    table = np.zeros((channels, height + 1, width + 1), dtype=np.int32)
    np.cumsum(masks != 0, axis=1, dtype=np.int32, out=table[:, 1:, 1:])
    np.cumsum(table[:, 1:, 1:], axis=2, out=table[:, 1:, 1:])
    return table


def crop_pixel_counts(masks: np.ndarray, boxes: np.ndarray, table=None) -> np.ndarray:
    """int [n, C]: mask pixels of each class inside each box (x, y, w, h)."""
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    height, width = np.shape(masks)[1:]
    _check_boxes(boxes, height, width)
    table = summed_area_tables(masks) if table is None else table
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    counts = table[:, y1, x1] - table[:, y0, x1] - table[:, y1, x0] + table[:, y0, x0]
    return counts.T


def crop_labels(
    masks: np.ndarray, boxes: np.ndarray, min_pixels: int = DEFAULT_MIN_PIXELS, table=None
) -> np.ndarray:
    """bool [n, C]: class c is present in box i when >= min_pixels of its mask pixels are inside.

    `table` (from `summed_area_tables(masks)`) may be passed to reuse it across calls.
    """
    if min_pixels < 1:
        raise ValueError(f"min_pixels must be >= 1, got {min_pixels}")
    return crop_pixel_counts(masks, boxes, table) >= min_pixels


def random_boxes(
    rng: np.random.Generator, height: int, width: int, n: int, tile: int = DEFAULT_TILE
) -> np.ndarray:
    """int64 [n, 4] boxes (x, y, tile, tile) placed uniformly inside a height x width image."""
    if height < tile or width < tile:
        raise ValueError(f"image {width}x{height} is smaller than the {tile}x{tile} crop")
    boxes = np.empty((n, 4), dtype=np.int64)
    boxes[:, 0] = rng.integers(0, width - tile + 1, size=n)
    boxes[:, 1] = rng.integers(0, height - tile + 1, size=n)
    boxes[:, 2:] = tile
    return boxes


def _check_boxes(boxes: np.ndarray, height: int, width: int) -> None:
    x, y, w, h = boxes.T
    outside = (x < 0) | (y < 0) | (w < 1) | (h < 1) | (x + w > width) | (y + h > height)
    if np.any(outside):
        bad = boxes[np.flatnonzero(outside)[0]].tolist()
        raise ValueError(f"box (x, y, w, h) = {bad} is not inside the {width}x{height} image")
