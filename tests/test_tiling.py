"""Tiling covers every pixel, boxes match the views, borders are aligned, bad frames are refused."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.inference.tiling import TilingError, axis_starts, tile_boxes, tile_frame


def test_severstal_frame_gives_seven_tiles_with_last_one_flush_right():
    frame = np.zeros((256, 1600), dtype=np.uint8)
    tiles = tile_frame(frame)
    assert len(tiles) == 7
    assert tiles.boxes[:, 0].tolist() == [0, 256, 512, 768, 1024, 1280, 1344]
    assert set(tiles.boxes[:, 1].tolist()) == {0}


def test_views_share_memory_and_match_boxes():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(300, 700), dtype=np.uint8)
    tiles = tile_frame(frame, tile=256, stride=200)
    for view, (x, y, w, h) in zip(tiles.views, tiles.boxes, strict=True):
        assert np.shares_memory(view, frame)
        np.testing.assert_array_equal(view, frame[y : y + h, x : x + w])
    assert tiles.stack().shape == (len(tiles), 256, 256)


@given(
    height=st.integers(16, 120),
    width=st.integers(16, 400),
    tile=st.integers(8, 16),
    stride_fraction=st.floats(0.1, 1.0),
)
def test_every_pixel_is_covered_and_boxes_stay_inside(height, width, tile, stride_fraction):
    stride = max(1, int(tile * stride_fraction))
    boxes = tile_boxes(height, width, tile, stride)
    covered = np.zeros((height, width), dtype=bool)
    for x, y, w, h in boxes:
        assert 0 <= x and x + w <= width and 0 <= y and y + h <= height
        assert (w, h) == (tile, tile)
        covered[y : y + h, x : x + w] = True
    assert covered.all()


def test_colour_frames_keep_channels():
    frame = np.zeros((256, 300, 3), dtype=np.uint8)
    tiles = tile_frame(frame)
    assert tiles.stack().shape == (2, 256, 256, 3)


@pytest.mark.parametrize("shape", [(255, 1600), (256, 100)])
def test_frame_smaller_than_tile_is_a_clear_error(shape):
    with pytest.raises(TilingError, match="smaller than the 256x256 tile"):
        tile_frame(np.zeros(shape, dtype=np.uint8))


def test_bad_stride_is_refused():
    with pytest.raises(TilingError, match="stride 300"):
        axis_starts(1000, 256, 300)
