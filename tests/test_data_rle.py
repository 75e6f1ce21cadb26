"""Kaggle RLE: hand-computed vectors, round trips, and the errors of malformed strings."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edge.errors import DataError
from train.data import rle

# 4 rows x 3 columns; pixel numbers run down each column: col 0 = 1..4, col 1 = 5..8, col 2 = 9..12.
MASK_4X3 = np.array(
    [
        [1, 0, 0],
        [1, 0, 1],
        [0, 1, 1],
        [0, 1, 0],
    ],
    dtype=bool,
)
RLE_4X3 = "1 2 7 2 10 2"  # rows 0-1 of col 0; rows 2-3 of col 1; rows 1-2 of col 2


def test_hand_computed_4x3_mask():
    assert rle.encode(MASK_4X3) == RLE_4X3
    np.testing.assert_array_equal(rle.decode(RLE_4X3, 4, 3), MASK_4X3)


def test_run_continues_across_a_column_boundary():
    mask = np.array([[0, 1], [1, 0]], dtype=bool)  # (1,0) is pixel 2, (0,1) is pixel 3
    assert rle.encode(mask) == "2 2"
    np.testing.assert_array_equal(rle.decode("2 2", 2, 2), mask)


def test_empty_and_full_masks():
    assert rle.encode(np.zeros((5, 7), bool)) == ""
    assert rle.encode(np.ones((5, 7), bool)) == "1 35"
    assert not rle.decode("", 5, 7).any()
    assert rle.decode("1 35", 5, 7).all()


def test_decode_is_column_major_on_a_kaggle_sized_mask():
    mask = rle.decode("257 3", 256, 1600)  # first three pixels of column 1
    assert mask.shape == (256, 1600)
    assert np.argwhere(mask).tolist() == [[0, 1], [1, 1], [2, 1]]


@settings(max_examples=200, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 20), st.integers(1, 20))))
def test_round_trip_mask(mask):
    text = rle.encode(mask)
    np.testing.assert_array_equal(rle.decode(text, *mask.shape), mask)


@settings(max_examples=200, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 20), st.integers(1, 20))))
def test_encoding_is_canonical(mask):
    text = rle.encode(mask)
    values = [int(v) for v in text.split()]
    starts, lengths = values[0::2], values[1::2]
    assert all(n >= 1 for n in lengths)
    ends = [s + n for s, n in zip(starts, lengths, strict=True)]
    assert all(ends[i] < starts[i + 1] for i in range(len(starts) - 1))  # sorted, not touching
    assert sum(lengths) == int(mask.sum())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 2 3", "odd number of RLE tokens"),
        ("1 x2", "'x2' is not an integer"),
        ("0 2", "start 0 is below 1"),
        ("11 3", "ends at pixel 13, past the image's 12 pixels"),
        ("1 5 3 2", "'3 2' overlaps or precedes the run '1 5'"),
        ("5 1 1 2", "'1 2' overlaps or precedes the run '5 1'"),
        ("1 0", "has length 0"),
    ],
)
def test_malformed_rle_is_one_line_error(text, message):
    with pytest.raises(DataError, match=message) as caught:
        rle.decode(text, 4, 3)
    assert "\n" not in str(caught.value)
