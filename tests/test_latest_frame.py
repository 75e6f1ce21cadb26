"""The latest-frame writer alone: interval, overwrite-latest, atomic files, errors counted."""

from __future__ import annotations

import json
import threading

import cv2
import jsonschema
import numpy as np

from edge.observe.latest_frame import SCHEMA, LatestFrame, LatestFrameWriter
from edge.schemas import load_schema
from tests.fixtures.broker import wait_until


def frame(frame_id: str, value: int = 100) -> LatestFrame:
    pixels = np.full((256, 512), value, np.uint8)
    return LatestFrame(pixels, frame_id, "2024-05-01T06:00:00.000Z", 256,
                       [(0, 0, 256, 256), (256, 0, 256, 256)], np.array([[0.1, 0.9], [0.2, 0.3]]),
                       ["a", "b"], [0.5, 0.6],
                       [{"class_id": 2, "class_name": "b", "score": 0.9,
                         "box_px": [0, 0, 256, 256]}])


def test_it_writes_the_jpeg_and_its_metadata_and_keeps_no_temp_files(tmp_path):
    writer = LatestFrameWriter(tmp_path, "cam1", interval_s=0.05)
    writer.start()
    try:
        assert writer.offer(frame("f1", 200))
        assert wait_until(lambda: writer.written == 1, 5)
    finally:
        writer.stop()
    image = cv2.imread(str(tmp_path / "latest/cam1.jpg"), cv2.IMREAD_GRAYSCALE)
    assert image.shape == (256, 512) and abs(float(image.mean()) - 200) < 2
    meta = json.loads((tmp_path / "latest/cam1.json").read_text())
    jsonschema.validate(meta, load_schema("latest-frame"))
    assert meta["schema"] == SCHEMA and meta["frame_id"] == "f1"
    assert (meta["width"], meta["height"], meta["tile_px"]) == (512, 256, 256)
    assert meta["tiles"][0] == {"box": [0, 0, 256, 256], "scores": [0.1, 0.9]}
    assert sorted(p.name for p in (tmp_path / "latest").iterdir()) == ["cam1.jpg", "cam1.json"]
    assert (tmp_path / "latest/cam1.jpg").stat().st_mode & 0o044 == 0o044  # console may read


def test_offers_within_the_interval_are_skipped_and_an_unwritten_one_is_replaced(tmp_path):
    writer = LatestFrameWriter(tmp_path, "cam1", interval_s=3600)
    assert writer.offer(frame("f1")) and not writer.offer(frame("f2"))
    writer = LatestFrameWriter(tmp_path, "cam1", interval_s=1e-6)  # not started: nothing taken
    for i in range(5):
        assert writer.offer(frame(f"f{i}"))
    assert writer.replaced == 4 and writer.written == 0
    writer.start()
    try:
        assert wait_until(lambda: writer.written == 1, 5)
    finally:
        writer.stop()
    assert json.loads((tmp_path / "latest/cam1.json").read_text())["frame_id"] == "f4"


def test_offer_never_waits_for_a_slow_write(tmp_path, monkeypatch):
    writer = LatestFrameWriter(tmp_path, "cam1", interval_s=1e-6)
    entered, release = threading.Event(), threading.Event()
    original = LatestFrameWriter.write

    def slow_write(self, item):
        entered.set()
        release.wait(10)
        original(self, item)

    monkeypatch.setattr(LatestFrameWriter, "write", slow_write)
    writer.start()
    try:
        writer.offer(frame("f1"))
        assert entered.wait(5)
        for i in range(100):  # the disk is stuck; the inference thread is not
            assert writer.offer(frame(f"g{i}"))
        release.set()
        assert wait_until(lambda: writer.written == 2, 5)
    finally:
        release.set()
        writer.stop()
    assert json.loads((tmp_path / "latest/cam1.json").read_text())["frame_id"] == "g99"


def test_a_failing_folder_is_counted_not_raised(tmp_path):
    (tmp_path / "latest").write_text("a file where the folder should be")
    writer = LatestFrameWriter(tmp_path, "cam1", interval_s=1e-6)
    writer.write(frame("f1"))
    assert (writer.errors, writer.written) == (1, 0)


def test_a_frame_with_nan_scores_is_an_error_not_a_bad_file(tmp_path):
    writer = LatestFrameWriter(tmp_path, "cam1", interval_s=1e-6)
    bad = frame("f1")
    bad.scores[0, 0] = np.nan
    writer.write(bad)
    assert writer.errors == 1 and not (tmp_path / "latest/cam1.json").exists()
