"""The coil defect map PNG: defects drawn to scale in their class colours, axes in m and mm."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.archive.coilmap import (
    CLASS_COLOURS,
    MapDefect,
    class_colour,
    render_coil_map,
    write_coil_map,
)

CLASSES = ["pitting", "inclusion", "scratches"]


def pixels_of(image: np.ndarray, colour) -> np.ndarray:
    """(rows, cols) of the pixels with exactly this BGR colour."""
    return np.nonzero(np.all(image == np.array(colour, np.uint8), axis=2))


def test_defects_are_drawn_to_scale_in_their_class_colours(tmp_path):
    defects = [
        MapDefect((100.0, 150.0), (200.0, 400.0), "scratches"),
        MapDefect((0.0, 10.0), (0.0, 50.0), "pitting"),
        MapDefect((300.0, 300.01), (900.0, 900.5), "pitting"),  # tiny: drawn at least 2 px
    ]
    coil_map = render_coil_map(defects, CLASSES, length_m=400.0, cd_range_mm=(0.0, 1000.0),
                               title="coil C1")
    path = tmp_path / "C1" / "map.png"
    write_coil_map(path, coil_map)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image.shape == coil_map.image.shape and np.array_equal(image, coil_map.image)
    layout = coil_map.layout
    # the scratch occupies exactly its MD x CD extent (legend swatches lie right of the plot)
    rows, cols = pixels_of(image, class_colour(2))
    in_plot = cols < layout.x0 + layout.width
    assert cols[in_plot].min() == pytest.approx(layout.md_to_x(100.0), abs=1)
    assert cols[in_plot].max() == pytest.approx(layout.md_to_x(150.0), abs=1)
    assert rows[in_plot].min() == pytest.approx(layout.cd_to_y(200.0), abs=1)
    assert rows[in_plot].max() == pytest.approx(layout.cd_to_y(400.0), abs=1)
    rows, cols = pixels_of(image, class_colour(0))
    in_plot = cols < layout.x0 + layout.width
    near_tiny = (np.abs(cols - layout.md_to_x(300.0)) <= 2) & (np.abs(rows - layout.cd_to_y(900))
                                                               <= 2)
    assert near_tiny.sum() >= 4  # visible though 1 cm x 0.5 mm
    plot = image[layout.y0 : layout.y0 + layout.height, layout.x0 : layout.x0 + layout.width]
    assert pixels_of(plot, class_colour(1))[0].size == 0  # no inclusion on this coil
    assert coil_map.counts == {"pitting": 2, "inclusion": 0, "scratches": 1}


def test_md_axis_spans_the_coil_length():
    coil_map = render_coil_map([MapDefect((0.0, 1234.5), (0.0, 10.0), "inclusion")], CLASSES,
                               length_m=1234.5, cd_range_mm=(0.0, 1500.0), width_px=1400)
    layout = coil_map.layout
    assert layout.md_to_x(0.0) == layout.x0
    assert layout.md_to_x(1234.5) == layout.x0 + layout.width
    rows, cols = pixels_of(coil_map.image, class_colour(1))
    in_plot = cols < layout.x0 + layout.width
    # a defect along the whole coil fills the plot from its left to its right edge
    assert cols[in_plot].min() == layout.x0 and cols[in_plot].max() == layout.x0 + layout.width - 1
    assert coil_map.image.shape[1] == 1400


def test_an_empty_coil_has_a_map_with_zero_counts_and_no_class_pixels():
    coil_map = render_coil_map([], CLASSES, length_m=50.0, cd_range_mm=(100.0, 1100.0))
    layout = coil_map.layout
    plot = coil_map.image[layout.y0 : layout.y0 + layout.height,
                          layout.x0 : layout.x0 + layout.width]
    for colour in CLASS_COLOURS[: len(CLASSES)]:
        assert pixels_of(plot, colour)[0].size == 0
    assert coil_map.counts == dict.fromkeys(CLASSES, 0)


def test_from_event_reads_a_defect_object():
    defect = MapDefect.from_event({"md_m": [1.0, 2.0], "cd_mm": [3.0, 4.0],
                                   "class_name": "pitting", "score": 0.9})
    assert defect == MapDefect((1.0, 2.0), (3.0, 4.0), "pitting")


@pytest.mark.parametrize(("length", "cd", "message"),
                         [(0.0, (0.0, 1.0), "length"), (10.0, (5.0, 5.0), "increasing")])
def test_bad_extents_are_refused(length, cd, message):
    with pytest.raises(ValueError, match=message):
        render_coil_map([], CLASSES, length_m=length, cd_range_mm=cd)
