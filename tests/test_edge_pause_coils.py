"""Coil reports across a pause (L2 tracking over a real mosquitto): frames acquired while paused
count as `frames.paused`, not inspected; a coil that passes entirely while paused still gets its
report, with coverage 0, in order."""

from __future__ import annotations

from types import SimpleNamespace

from edge.config import parse_config
from edge.control.pause import InspectionPause
from tests.fixtures.broker import Subscriber, wait_until
from tests.fixtures.coils import FedSource, L2Publisher, defect_frame
from tests.fixtures.edge_daemon import daemon_sections, validate_messages
from tests.fixtures.reliability import running_daemon

L2_TOPIC = "l2/L1/coil"


def test_paused_frames_and_a_coil_never_inspected_show_in_the_coil_reports(
    tmp_path, mqtt_broker, mean_model
):
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, "steel-inspect/#")
    l2 = L2Publisher(mqtt_broker, L2_TOPIC)
    l2.send({"coil_id": "A"})
    source = FedSource()
    config = parse_config(daemon_sections(tmp_path, mqtt_broker, mean_model, tmp_path,
                                          tracking={"source": "mqtt", "topic": L2_TOPIC}))
    try:
        with running_daemon(config, source=source, lossless=True) as daemon:
            assert wait_until(lambda: daemon.tracker.last_coil_id == "A"), daemon.status_line()

            def feed(frames: int, coil: str | None = None) -> None:
                if coil is not None:
                    l2.send({"coil_id": coil})
                    assert wait_until(lambda: daemon.tracker.last_coil_id == coil)
                acquired = daemon.stats.frames_in + frames
                for _ in range(frames):
                    source.push(defect_frame([]))
                assert wait_until(lambda: daemon.stats.frames_in == acquired)

            feed(2)
            assert wait_until(lambda: daemon.stats.frames_processed == 2)
            daemon.set_paused(True, "op1", "test")
            feed(1)  # A, paused
            feed(2, "B")  # all of B while paused
            feed(1, "C")
            assert wait_until(lambda: len(subscriber.messages("/coils")) == 2), \
                daemon.status_line()  # A, and B once the strip moved on to C
            daemon.set_paused(False, "op1", None)
            feed(2)
            assert wait_until(lambda: daemon.stats.frames_processed == 4)
            assert daemon.stats.frames_paused == 4
        assert wait_until(lambda: len(subscriber.messages("/coils")) == 3)
        validate_messages(subscriber.messages())
    finally:
        subscriber.close()
        l2.close()
    reports = subscriber.payloads("/coils")
    assert [(r["coil_id"], r["end_reason"]) for r in reports] == [
        ("A", "tracking"), ("B", "tracking"), ("C", "stop")]
    frames = [r["frames"] for r in reports]
    assert frames == [{"in": 3, "processed": 2, "failed": 0, "paused": 1, "dropped": 0},
                      {"in": 2, "processed": 0, "failed": 0, "paused": 2, "dropped": 0},
                      {"in": 3, "processed": 2, "failed": 0, "paused": 1, "dropped": 0}]
    assert [r["coverage"] for r in reports] == [round(2 / 3, 6), 0.0, round(2 / 3, 6)]
    assert reports[1]["length_m"] > 0 and reports[1]["defects"] == {
        name: 0 for name in reports[0]["defects"]}


def test_a_late_paused_frame_of_a_coil_already_reported_gets_no_second_report(tmp_path):
    """The grabber places a frame on coil A just before the inference thread reports A; its
    skipped() comes after: it must not bring A back for a second report (nor an earlier coil)."""
    pause = InspectionPause(tmp_path)
    a, b = SimpleNamespace(coil_key=1), SimpleNamespace(coil_key=2)
    pause.skipped(a, 100, 1.0)
    pause.skipped(b, 100, 2.0)
    pause.coil_reported(1)
    assert list(pause.coils) == [2]
    pause.skipped(a, 100, 3.0)  # late
    pause.skipped(SimpleNamespace(coil_key=0), 100, 3.0)
    pause.skipped(b, 100, 3.5)
    assert list(pause.coils) == [2] and pause.frames_by_coil == {1: 1, 2: 2}
    assert pause.coils[2].last_ts == 3.5
