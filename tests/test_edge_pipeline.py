"""Pipeline parts without a broker: tiles -> defects with thresholds and ROI, the frame queue."""

from __future__ import annotations

import threading

import jsonschema
import numpy as np
import pytest

from edge.config import EventsConfig, SiteConfig, TilingConfig
from edge.defects.events import DefectRule, EventBuilder, model_info
from edge.errors import ConfigError
from edge.inference.framequeue import FrameQueue
from edge.inference.model import load_model
from edge.inference.pipeline import FrameProcessor
from edge.inference.tiling import TilingError
from edge.schemas import load_schema
from edge.sources.base import Frame
from tests.fixtures.edge_daemon import TILE, expected_classes, frame_with_tiles


@pytest.fixture(scope="module")
def loaded(mean_model):
    model = load_model(mean_model, "onnxruntime", max_batch=4, threads=1)
    yield model
    model.close()


def processor(model, events=None, **tiling) -> FrameProcessor:
    rule = DefectRule(model.card, EventsConfig(**(events or {})))
    return FrameProcessor(model, rule, TilingConfig(**tiling))


def found(defects) -> list[tuple[int, list[int]]]:
    return sorted((d["class_id"], d["box"]) for d in defects)


def test_defects_follow_the_card_thresholds_per_tile(loaded):
    values = [0, 127, 128, 200, 255, 90, 255]  # 7 tiles: more than one batch of 4
    defects, inference_s = processor(loaded).process(frame_with_tiles(values))
    expected = sorted(
        (c, [i * TILE, 0, TILE, TILE]) for i, v in enumerate(values) for c in expected_classes(v)
    )
    assert found(defects) == expected and len(expected) == 6
    assert inference_s > 0
    white = [d for d in defects if d["box"][0] == 4 * TILE]
    assert {d["class_name"] for d in white} == {"rolled-in scale", "scratches"}
    assert all(d["score"] >= d["threshold"] == 0.5 for d in defects)


def test_threshold_overrides_min_score_and_unknown_classes(loaded):
    frame = frame_with_tiles([200, 150])  # class 2 scores 0.39 and 0.29
    lowered = processor(loaded, {"thresholds": {"scratches": 0.3}})
    defects = lowered.process(frame)[0]
    assert found(defects) == [(1, [0, 0, 256, 256]), (1, [256, 0, 256, 256]),
                              (2, [0, 0, 256, 256])]
    assert [d["threshold"] for d in defects if d["class_id"] == 2] == [0.3]
    strict = processor(loaded, {"thresholds": {"scratches": 0.3}, "min_score": 0.7})
    assert found(strict.process(frame)[0]) == [(1, [0, 0, 256, 256])]
    with pytest.raises(ConfigError, match="events.thresholds.dents: unknown class; the model"):
        processor(loaded, {"thresholds": {"dents": 0.5}})


def test_roi_and_overlap_put_boxes_in_frame_pixels(loaded):
    frame = np.zeros((300, 1000), np.uint8)
    frame[40:296, 600:856] = 255
    roi = {"x": 100, "y": 40, "width": 800, "height": 256}
    defects = processor(loaded, overlap=56, roi=roi).process(frame)[0]
    # ROI tiles start at 0, 200, 400, 544 (the last one flush): frame x 100, 300, 500, 644;
    # the white block (x 600..855) covers 156 px of the third tile and 212 px of the fourth
    assert found(defects) == [(1, [500, 40, 256, 256]), (1, [644, 40, 256, 256])]
    with pytest.raises(TilingError, match="tiling.roi 800x256\\+100\\+40 lies outside"):
        processor(loaded, roi=roi).process(np.zeros((256, 800), np.uint8))


def test_event_payload_matches_the_schema(loaded):
    defects = processor(loaded).process(frame_with_tiles([255, 0]))[0]
    builder = EventBuilder(
        site=SiteConfig(line="L1", camera="cam1"),
        model=model_info(loaded.card, loaded.sha256),
    )
    event = builder.build(Frame("f1", 1_700_000_000.25, np.zeros((1, 1), np.uint8)), defects)
    event["seq"] = 1
    jsonschema.validate(event, load_schema("defects-v1"))
    assert event["ts"] == "2023-11-14T22:13:20.250Z"
    assert event["model"]["sha256"] == loaded.sha256
    other = builder.build(Frame("f1", 0.0, np.zeros((1, 1), np.uint8)), defects)
    assert other["event_id"] != event["event_id"]


def test_frame_queue_drops_the_oldest_and_counts():
    queue = FrameQueue(2)
    frames = [Frame(str(i), 0.0, np.zeros((1, 1), np.uint8)) for i in range(5)]
    for frame in frames:
        queue.put(frame)
    assert queue.dropped == 3 and len(queue) == 2
    assert [queue.get(0.1).frame_id for _ in range(2)] == ["3", "4"]
    assert queue.get(0.01) is None


def test_frame_queue_blocking_put_waits_for_room():
    queue = FrameQueue(1)
    first, second = (Frame(str(i), 0.0, np.zeros((1, 1), np.uint8)) for i in range(2))
    queue.put(first)
    assert not queue.put(second, block=True, timeout=0.05)
    taker = threading.Timer(0.05, queue.get, args=(1.0,))
    taker.start()
    assert queue.put(second, block=True, timeout=2.0)
    taker.join()
    assert queue.dropped == 0 and queue.get(0.1).frame_id == "1"
