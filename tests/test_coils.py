"""Coil-aware inspection end to end on a real mosquitto: L2 tracking over MQTT, strip positions,
defect objects, coil reports, schemas (events v2).

Frames are 4 x 2 tiles (1024 x 512). The true defects are bright rectangles whose positions the
test knows; the mean model (tests.fixtures.edge_daemon) reports the tiles they cover enough.
"""

from __future__ import annotations

import json
from collections import defaultdict

import cv2
import jsonschema
import pytest

from edge.config import parse_config
from edge.schemas import load_schema
from tests.fixtures.broker import Subscriber, wait_until
from tests.fixtures.coils import HEIGHT, WIDTH, FedSource, L2Publisher, defect_frame
from tests.fixtures.edge_daemon import daemon_sections, validate_messages
from tests.fixtures.reliability import running_daemon

L2_TOPIC = "l2/L1/coil"
GEOMETRY = {"mm_per_px_cd": 2.0, "mm_per_px_md": 0.5, "cd_origin": "right",
            "cd_offset_mm": 100.0, "side": "bottom"}
FRAME_M = HEIGHT * GEOMETRY["mm_per_px_md"] / 1000.0

# true defects, (x, y, w, h) in frame pixels
TOP_PAIR = (40, 30, 440, 220)  # covers tiles (0, 0) and (1, 0): one defect of two tiles
AT_BOTTOM = (800, 290, 200, 222)  # tile (3, 1), reaches the frame's last row
GOES_ON = (800, 0, 200, 200)  # tile (3, 0) of the next frame: the same defect continued

COILS = {  # coil -> its frames' true defects, in acquisition order
    "A": [[TOP_PAIR, AT_BOTTOM], [GOES_ON], []],
    "B": [[TOP_PAIR], [AT_BOTTOM]],
    "C": [[GOES_ON], [TOP_PAIR]],  # a new coil: GOES_ON here does not continue B's defect
}
DISTINCT = {"A": 2, "B": 2, "C": 2}
MALFORMED = [b"not json", b'{"speed_m_s": "fast"}', b'{"length_m": 3}', b"[1, 2]",
             b'{"coil_id": 17}']


def coil_config(tmp_path, broker, model, **overrides):
    sections = daemon_sections(
        tmp_path, broker, model, tmp_path, geometry=GEOMETRY,
        tracking={"source": "mqtt", "topic": L2_TOPIC}, archive={"whole_frame": True},
        **overrides,
    )
    return parse_config(sections)


def true_extent(rect, frame_md_m):
    """(md_m, cd_mm) ranges of a true defect under GEOMETRY."""
    x, y, w, h = rect
    s_cd, s_md = GEOMETRY["mm_per_px_cd"], GEOMETRY["mm_per_px_md"] / 1000.0
    cd = (GEOMETRY["cd_offset_mm"] + (WIDTH - x - w) * s_cd,
          GEOMETRY["cd_offset_mm"] + (WIDTH - x) * s_cd)
    return (frame_md_m + y * s_md, frame_md_m + (y + h) * s_md), cd


def contains(outer, inner, tolerance=1e-6):
    return outer[0] <= inner[0] + tolerance and inner[1] <= outer[1] + tolerance


def overlaps(box, rect):
    bx, by, bw, bh = box
    x, y, w, h = rect
    return bx < x + w and x < bx + bw and by < y + h and y < by + bh


def test_coil_changes_positions_defect_objects_and_reports(tmp_path, mqtt_broker, mean_model):
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, "steel-inspect/#")
    l2 = L2Publisher(mqtt_broker, L2_TOPIC)
    l2.send({"coil_id": "A", "length_m": 1.5})  # retained: the daemon honours it at start
    source = FedSource()
    truth = {}  # frame_id -> (coil, true rects)
    try:
        with running_daemon(coil_config(tmp_path, mqtt_broker, mean_model),
                            source=source, lossless=True) as daemon:
            assert wait_until(lambda: daemon.tracker.last_coil_id == "A"), daemon.status_line()
            processed = 0
            for coil, frames in COILS.items():
                if coil != "A":
                    l2.send({"coil_id": coil, "speed_m_s": 2.5})
                    assert wait_until(lambda c=coil: daemon.tracker.last_coil_id == c)
                if coil == "B":
                    for payload in MALFORMED:
                        l2.send(payload, retain=False)
                    assert wait_until(lambda: daemon.tracker.malformed == len(MALFORMED))
                for rects in frames:
                    source.push(defect_frame(rects))
                    truth[f"f{source.pushed:04d}"] = (coil, rects)
                processed += len(frames)
                assert wait_until(lambda n=processed: daemon.stats.frames_processed == n)
            assert wait_until(lambda: len(subscriber.messages("/coils")) == 2), \
                daemon.status_line()
            assert daemon.tracker.state == "ok"
            assert wait_until(lambda: any(s.get("coil_id") == "C"
                                          for s in subscriber.payloads("/stats")))
        assert wait_until(lambda: len(subscriber.messages("/coils")) == 3)
        counts = validate_messages(subscriber.messages())
    finally:
        subscriber.close()
        l2.close()
    events = subscriber.payloads("/defects")
    reports = subscriber.payloads("/coils")
    assert counts["defects"] == len(events) == sum(1 for _, r in truth.values() if r)
    assert [r["coil_id"] for r in reports] == ["A", "B", "C"]
    assert [r["end_reason"] for r in reports] == ["tracking", "tracking", "stop"]
    assert [r["seq"] for r in reports] == [1, 2, 3]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["stream"] for e in events + reports}) == 1

    by_coil = defaultdict(list)
    for event in events:
        coil, rects = truth[event["frame_id"]]
        assert event["coil_id"] == coil and event["side"] == "bottom"
        assert event["tracking"] == "ok"
        by_coil[coil].append(event)
        # one defect object per true defect of the frame, and its extents contain the truth
        assert len(event["defects"]) == len(rects)
        for defect in event["defects"]:
            matches = [r for r in rects if overlaps(defect["box_px"], r)]
            assert len(matches) == 1, (defect, rects)
            md, cd = true_extent(matches[0], event["md_m"])
            assert contains(defect["md_m"], md) and contains(defect["cd_mm"], cd), defect
            assert defect["threshold"] == 0.5 and defect["area_mm2"] > 0
    for coil, coil_events in by_coil.items():
        mds = [e["md_m"] for e in coil_events]
        assert mds == sorted(mds) and mds[0] == 0.0  # every coil's first frame has a defect
        frames = [i for i, rects in enumerate(COILS[coil]) if rects]
        assert mds == pytest.approx([i * FRAME_M for i in frames])
    # A's defect at the bottom of frame 1 goes on in frame 2: one defect_id for both parts
    first, second = by_coil["A"][0]["defects"], by_coil["A"][1]["defects"]
    assert second[0]["defect_id"] in {d["defect_id"] for d in first}
    assert by_coil["C"][0]["defects"][0]["defect_id"] == 1  # a new coil numbers from 1
    assert {len(d["defects"]) for d in by_coil["B"]} == {1}

    for report in reports:
        coil = report["coil_id"]
        ids = {d["defect_id"] for e in by_coil[coil] for d in e["defects"]}
        assert report["defects"]["rolled-in scale"] == len(ids) == DISTINCT[coil]
        assert report["defects"]["scratches"] == 0
        n = len(COILS[coil])
        assert report["frames"] == {"in": n, "processed": n, "failed": 0, "paused": 0,
                                    "dropped": 0}
        assert report["coverage"] == 1.0
        assert report["length_m"] == pytest.approx(n * FRAME_M)
    assert reports[0]["l2_length_m"] == 1.5

    # the archive (beside the outbox by default): every defect's crop and every coil's map
    archive = tmp_path / "state" / "archive"
    for event in events:
        for defect in event["defects"]:
            crop = cv2.imread(str(archive / defect["image"]), cv2.IMREAD_GRAYSCALE)
            x, y, w, h = defect["box_px"]
            assert crop is not None and crop.shape[0] >= h and crop.shape[1] >= w
            assert crop.max() >= 200  # the bright defect is in it
        whole = cv2.imread(str(archive / event["frame_image"]), cv2.IMREAD_GRAYSCALE)
        assert whole.shape == (HEIGHT, WIDTH)
    for report in reports:
        picture = cv2.imread(str(archive / report["map"]))
        assert picture is not None and picture.shape[1] == 1600
        assert report["map"].startswith(report["coil_id"] + "_")
    # the console's latest frame: the picture and its tile scores, valid against the schema
    latest = json.loads((archive / "latest" / "cam1.json").read_text())
    jsonschema.validate(latest, load_schema("latest-frame"))
    assert latest["frame_id"] in truth and len(latest["tiles"]) == 8
    assert cv2.imread(str(archive / "latest" / "cam1.jpg")).shape[:2] == (HEIGHT, WIDTH)


def test_kill_9_mid_coil_gives_one_report(tmp_path, mqtt_broker, mean_model, mqtt_subscriber):
    import signal  # noqa: PLC0415

    from tests.fixtures.edge_daemon import DaemonProcess, write_config, write_frames  # noqa: PLC0415

    frames = {f"{i:03d}.png": defect_frame([TOP_PAIR] if i % 2 else [AT_BOTTOM])
              for i in range(60)}
    images = write_frames(tmp_path / "frames", frames)
    sections = daemon_sections(
        tmp_path, mqtt_broker, mean_model, images, geometry=GEOMETRY,
        tracking={"source": "mqtt", "topic": L2_TOPIC}, camera={"rate": 20, "loop": True},
    )
    config = write_config(tmp_path / "edge.toml", sections)
    l2 = L2Publisher(mqtt_broker, L2_TOPIC)
    l2.send({"coil_id": "K1"})
    try:
        first = DaemonProcess(config)
        try:
            assert wait_until(lambda: len(mqtt_subscriber.messages("/defects")) >= 10,
                              timeout=60), first.log
            first.signal(signal.SIGKILL)
            first.wait(10)
        finally:
            first.stop()
        before = len(mqtt_subscriber.messages("/defects"))
        second = DaemonProcess(config)
        try:
            assert wait_until(lambda: len(mqtt_subscriber.messages("/defects")) >= before + 10,
                              timeout=60), second.log
            l2.send({"coil_id": "K2"})
            assert wait_until(lambda: len(mqtt_subscriber.messages("/coils")) == 1,
                              timeout=30), second.log
            second.signal(signal.SIGTERM)
            assert second.wait(30) == 0, second.log
        finally:
            second.stop()
    finally:
        l2.close()
    assert wait_until(lambda: len(mqtt_subscriber.messages("/coils")) == 2), second.log
    validate_messages(mqtt_subscriber.messages())
    events = mqtt_subscriber.payloads("/defects")
    k1, k2 = mqtt_subscriber.payloads("/coils")
    assert (k1["coil_id"], k1["end_reason"], k1["restarts"]) == ("K1", "tracking", 1)
    assert (k2["coil_id"], k2["end_reason"], k2["restarts"]) == ("K2", "stop", 0)
    # frames acquired before the retained L2 message arrived belong to K1 but say coil_id null
    # (deduplicated: events in flight at the kill are sent again, as at-least-once allows)
    unique = {e["event_id"]: e for e in events}.values()
    k1_events = [e for e in unique if e["coil_id"] in ("K1", None)]
    ids = {d["defect_id"] for e in k1_events for d in e["defects"]}
    assert k1["defects"]["rolled-in scale"] == len(ids) > 10
    # numbering went on after the crash: no stored defect_id was given to another defect
    per_id = defaultdict(set)
    for event in k1_events:
        for defect in event["defects"]:
            per_id[defect["defect_id"]].add(event["event_id"])
    assert all(len(parts) <= 2 for parts in per_id.values())
    mds = [e["md_m"] for e in k1_events]
    assert mds == sorted(mds)  # MD goes on from where the crash left it
    assert k1["frames"]["processed"] >= len(k1_events)
    assert k1["frames"]["in"] == sum(k1["frames"][k] for k in ("processed", "failed", "dropped"))


def test_dropped_frames_show_in_the_coverage(tmp_path, mqtt_broker, mean_model, mqtt_subscriber):
    import time  # noqa: PLC0415

    from edge.inference.model import load_model  # noqa: PLC0415

    model = load_model(mean_model, "onnxruntime", max_batch=8, threads=1)
    infer = model.runtime.infer_all

    def slow(batch):
        time.sleep(0.05)
        return infer(batch)

    model.runtime.infer_all = slow
    source = FedSource()
    config = parse_config(daemon_sections(tmp_path, mqtt_broker, mean_model, tmp_path,
                                          pipeline={"frame_queue": 1}))
    with running_daemon(config, source=source, model=model) as daemon:
        for _ in range(30):
            source.push(defect_frame([TOP_PAIR]))
        pipeline = daemon.pipeline
        assert wait_until(lambda: source.pushed == 30 and pipeline.frames.dropped > 0
                          and len(pipeline.frames) == 0 and not pipeline._busy)
        dropped = daemon.pipeline.frames.dropped
    assert wait_until(lambda: len(mqtt_subscriber.messages("/coils")) == 1)
    report = mqtt_subscriber.payloads("/coils")[0]
    assert report["coil_id"] is None and report["end_reason"] == "stop"
    assert report["frames"]["in"] == 30 and report["frames"]["dropped"] == dropped > 0
    assert report["frames"]["processed"] == 30 - dropped
    assert report["coverage"] == round((30 - dropped) / 30, 6)


def test_events_v1_stay_selectable_and_report_the_applied_threshold(
    tmp_path, mqtt_broker, mean_model, mqtt_subscriber, monkeypatch
):
    from edge.delivery.publisher import Publisher  # noqa: PLC0415

    states = []
    monkeypatch.setattr(Publisher, "save_state", lambda self, state: states.append(state))
    source = FedSource()
    config = parse_config(daemon_sections(tmp_path, mqtt_broker, mean_model, tmp_path,
                                          mqtt={"event_schema": "v1"},
                                          events={"min_score": 0.6}))
    with running_daemon(config, source=source, lossless=True) as daemon:
        source.push(defect_frame([TOP_PAIR]))
        assert wait_until(lambda: daemon.stats.frames_processed == 1)
    assert wait_until(lambda: mqtt_subscriber.messages("/defects"))
    validate_messages(mqtt_subscriber.messages())
    event = mqtt_subscriber.payloads("/defects")[0]
    assert event["schema"] == "steel-inspect/defect-event/v1"
    assert {d["threshold"] for d in event["defects"]} == {0.6}  # min_score above the card's 0.5
    assert not mqtt_subscriber.messages("/coils")
    assert states == []  # no coil, so no coil state is written per frame
    birth = next(s for s in mqtt_subscriber.payloads("/status") if s["state"] == "online")
    assert birth["event_schema"].endswith("/v1")
    assert [c["threshold"] for c in birth["classes"]] == [0.6, 0.6, 0.6]
    assert birth["stream"] and birth["last_seq"] == 0
