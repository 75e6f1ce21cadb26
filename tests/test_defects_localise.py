"""edge.defects.localise: boxes from CAM cells, inside their tiles, at the class's logit level."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.defects.localise import cam_level, localise, union_area

LOW = -8.0  # a cell far below any level


def cam_with(cells: list[tuple[int, int]], value: float = 4.0, size: int = 8) -> np.ndarray:
    cam = np.full((size, size), LOW, np.float32)
    for row, col in cells:
        cam[row, col] = value
    return cam


def test_level_is_the_logit_of_the_threshold():
    assert cam_level(0.5) == 0.0
    assert cam_level(0.8) == pytest.approx(math.log(4.0))
    assert cam_level(0.2) == pytest.approx(-math.log(4.0))
    with pytest.raises(ValueError, match="strictly between"):
        cam_level(1.0)


def test_one_cell_gives_its_32px_square_in_frame_pixels():
    result = localise([(512, 0, 256, 256)], [cam_with([(2, 3)])], 0.5)
    assert result.box_px == (512 + 3 * 32, 2 * 32, 32, 32)
    assert result.area_px == 32 * 32 and result.cells == 1


def test_box_spans_cells_of_several_tiles_and_stays_inside_them():
    tiles = [(0, 0, 256, 256), (256, 0, 256, 256)]
    cams = [cam_with([(7, 7)]), cam_with([(0, 0), (1, 0)])]
    result = localise(tiles, cams, 0.6)
    assert result.box_px == (224, 0, 64, 256)
    assert result.area_px == 3 * 32 * 32
    x, y, w, h = result.box_px
    assert 0 <= x and x + w <= 512 and 0 <= y and y + h <= 256


def test_overlapping_tiles_count_shared_pixels_once():
    # the last tile of a 1600-px frame starts at 1344, overlapping the one at 1280 by 192 px
    full = np.full((8, 8), 3.0, np.float32)
    result = localise([(1280, 0, 256, 256), (1344, 0, 256, 256)], [full, full], 0.5)
    assert result.box_px == (1280, 0, 320, 256)
    assert result.area_px == 320 * 256


def test_cells_below_the_level_or_nan_give_none():
    level = cam_level(0.7)
    cam = np.full((8, 8), level - 1e-3, np.float32)
    cam[0, 0] = np.nan
    assert localise([(0, 0, 256, 256)], [cam], 0.7) is None
    cam[4, 4] = level + 1e-3
    assert localise([(0, 0, 256, 256)], [cam], 0.7).box_px == (128, 128, 32, 32)


def test_a_passing_tile_always_has_a_box():
    """mean(cam) >= level implies max(cam) >= level: a tile over threshold is never box-less."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        threshold = float(rng.uniform(0.05, 0.95))
        cam = rng.normal(0, 3, (8, 8)).astype(np.float32)
        cam += cam_level(threshold) - cam.mean() + abs(rng.normal(0, 0.1))
        assert localise([(0, 0, 256, 256)], [cam], threshold) is not None


def test_non_square_maps_and_tiles_map_to_their_own_grid():
    cam = np.full((4, 2), LOW, np.float32)
    cam[3, 1] = 1.0
    assert localise([(10, 20, 100, 200)], [cam], 0.5).box_px == (60, 170, 50, 50)


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="2 tile boxes but 1 cam"):
        localise([(0, 0, 256, 256)] * 2, [cam_with([])], 0.5)
    with pytest.raises(ValueError, match="2-D"):
        localise([(0, 0, 256, 256)], [np.zeros((1, 8, 8), np.float32)], 0.5)


def test_union_area_matches_a_raster():
    rng = np.random.default_rng(1)
    rects = rng.integers(0, 50, (12, 2))
    rects = np.concatenate([rects, rects + rng.integers(1, 30, (12, 2))], axis=1)
    raster = np.zeros((100, 100), bool)
    for x0, y0, x1, y1 in rects:
        raster[y0:y1, x0:x1] = True
    assert union_area(rects) == raster.sum()


def test_union_area_of_one_row_matches_a_raster():
    """Tiles of one frame row (the fast path): overlapping, nested, touching and apart."""
    rng = np.random.default_rng(2)
    for _ in range(200):
        x0 = rng.integers(0, 80, 6)
        rects = np.stack([x0, np.full(6, 10), x0 + rng.integers(1, 40, 6), np.full(6, 30)], 1)
        raster = np.zeros((100, 130), bool)
        for a, b, c, d in rects:
            raster[b:d, a:c] = True
        assert union_area(rects) == raster.sum()


def test_cells_far_below_the_peak_are_left_out():
    cam = cam_with([(1, 1)], value=10.0)
    cam[1, 2] = 3.0  # over the threshold's logit (0) but under 0.4 of the way to the peak
    cam[1, 3] = 5.0  # over it
    result = localise([(0, 0, 256, 256)], [cam], 0.5, peak_fraction=0.4)
    assert result.box_px == (32, 32, 96, 32) and result.cells == 2
    assert localise([(0, 0, 256, 256)], [cam], 0.5, peak_fraction=0.0).cells == 3
