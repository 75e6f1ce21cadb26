"""The coil pieces alone: L2 message parsing, strip placement, defect objects."""

from __future__ import annotations

import numpy as np
import pytest

from edge.config import GeometryConfig
from edge.defects.objects import ClassCuts, DefectBuilder
from edge.defects.position import StripLocator
from edge.tracking import Tracker, parse_coil_message

CLASSES = ClassCuts([1, 2], ["scale", "scratches"], np.asarray([0.5, 0.5], np.float32),
                    [0.5, 0.5])


@pytest.mark.parametrize(("payload", "message"), [
    (b"\xff", "not JSON"),
    (b"{", "not JSON"),
    (b"[1]", "not a JSON object"),
    (b'{"length_m": 3}', "coil_id is missing"),
    (b'{"coil_id": 5}', "coil_id must be a string"),
    (b'{"coil_id": ""}', "coil_id must be a string"),
    (b'{"coil_id": "A", "speed_m_s": "fast"}', "speed_m_s must be a non-negative number"),
    (b'{"coil_id": "A", "speed_m_s": true}', "speed_m_s must be a non-negative number"),
    (b'{"coil_id": "A", "length_m": -1}', "length_m must be a non-negative number"),
    (b'{"coil_id": "A", "speed_m_s": NaN}', "speed_m_s must be a non-negative number"),
])
def test_malformed_l2_messages_are_named(payload, message):
    with pytest.raises(ValueError, match=message):
        parse_coil_message(payload)


def test_l2_messages_coil_speed_alone_and_counted_faults():
    assert parse_coil_message(b'{"coil_id": "C1", "speed_m_s": 2, "length_m": 800.5}') == \
        ("C1", 2.0, 800.5)
    assert parse_coil_message(b'{"speed_m_s": 1.5}') == (None, 1.5, None)
    tracker = Tracker("mqtt")
    tracker.report_message(b"junk", "t")
    tracker.report_message(b'{"coil_id": "C1"}', "t")
    assert tracker.counters == {"messages": 1, "malformed": 1}
    assert tracker.last_coil_id == "C1"


def test_a_coil_starts_at_the_first_frame_acquired_after_the_message():
    tracker = Tracker("mqtt")
    locator = StripLocator(GeometryConfig(mm_per_px_md=0.5), tracker)
    tracker.report("A", arrival=100.0)
    first = locator.place(100.5, 200)
    tracker.report("B", arrival=101.2)
    before = locator.place(101.0, 200)  # acquired before B's message arrived: still A
    after = locator.place(101.5, 200)
    assert (first.coil_id, first.md_m) == ("A", 0.0)
    assert (before.coil_id, before.md_m, before.frame_index) == ("A", 0.1, 1)
    assert (after.coil_id, after.md_m, after.frame_index) == ("B", 0.0, 0)
    assert after.coil_key == first.coil_key + 1
    assert locator.frames_in == {first.coil_key: 2, after.coil_key: 1}


def test_md_from_speed_integrates_over_acquisition_times():
    tracker = Tracker("mqtt")
    locator = StripLocator(GeometryConfig(md_source="speed", speed_m_s=1.0), tracker)
    mds = [locator.place(t, 256).md_m for t in (10.0, 10.5)]
    tracker.report(None, speed_m_s=4.0)
    mds.append(locator.place(11.0, 256).md_m)
    assert mds == pytest.approx([0.0, 0.5, 2.5])


def grid_boxes(columns=4, rows=2, tile=256, stride=256):
    return np.asarray([(x, y, tile, tile) for y in range(0, rows * stride, stride)
                       for x in range(0, columns * stride, stride)], np.int32)


def test_touching_and_overlapping_tiles_merge_per_class():
    boxes = np.concatenate([grid_boxes(), [[768 - 32, 0, 256, 256]]])  # an overlapping last tile
    probabilities = np.zeros((len(boxes), 2), np.float32)
    probabilities[[0, 5], 0] = 0.9  # diagonal neighbours: one defect
    probabilities[[3, 8], 0] = [0.6, 0.7]  # a tile and the one overlapping it: one defect
    probabilities[[3], 1] = 0.8  # another class on the same tile: its own defect
    builder = DefectBuilder(CLASSES, GeometryConfig(mm_per_px_cd=0.5, mm_per_px_md=2.0), 1024)
    placement = StripLocator(GeometryConfig(), Tracker("none")).place(0.0, 512)
    defects = builder.build(probabilities, boxes, placement)
    found = sorted((d["class_name"], d["box_px"], d["tiles"], d["score"]) for d in defects)
    assert found == [
        ("scale", [0, 0, 512, 512], 2, 0.9),
        ("scale", [736, 0, 288, 256], 2, 0.7),
        ("scratches", [768, 0, 256, 256], 1, 0.8),
    ]
    areas = {tuple(d["box_px"]): d["area_mm2"] for d in defects if d["class_name"] == "scale"}
    assert areas[(0, 0, 512, 512)] == 2 * 256 * 256  # two tiles, not their bounding box
    assert areas[(736, 0, 288, 256)] == 288 * 256
    assert sorted(d["defect_id"] for d in defects) == [1, 2, 3]


def test_a_defect_keeps_its_id_into_the_next_frame_only_when_frames_follow():
    tracker = Tracker("none")
    locator = StripLocator(GeometryConfig(), tracker)
    builder = DefectBuilder(CLASSES, GeometryConfig(), 1024)
    boxes = grid_boxes()
    bottom, top = np.zeros((8, 2), np.float32), np.zeros((8, 2), np.float32)
    bottom[6, 0] = 0.9  # last row, third column
    top[1, 0] = top[2, 0] = 0.9  # first row, second and third columns
    first = builder.build(bottom, boxes, locator.place(0.0, 512))
    second = builder.build(top, boxes, locator.place(1.0, 512))
    locator.place(2.0, 512)  # a frame dropped before processing
    third = builder.build(bottom, boxes, locator.place(3.0, 512))
    fourth = builder.build(top, boxes, locator.place(3.0, 512))
    assert second[0]["defect_id"] == first[0]["defect_id"] == 1
    assert third[0]["defect_id"] == 2 and fourth[0]["defect_id"] == 2
    locator.place(4.0, 512)
    after_gap = builder.build(top, boxes, locator.place(5.0, 512))
    assert after_gap[0]["defect_id"] == 3  # frames between: not the same defect
