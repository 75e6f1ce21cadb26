"""The daemon in-process on a real mosquitto: broker outage, refused connection, stuck inference."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections import Counter

import pytest

from edge.config import parse_config
from edge.inference.model import load_model
from edge.inference.runtime.base import Runtime
from tests.fixtures.broker import Subscriber, wait_until
from tests.fixtures.edge_daemon import (
    NotifySocket,
    daemon_sections,
    frame_with_tiles,
    validate_messages,
    write_frames,
)
from tests.fixtures.reliability import running_daemon


def config_for(tmp_path, broker, model, images, **overrides):
    return parse_config(daemon_sections(tmp_path, broker, model, images, **overrides))


def unique_in_order(values):
    return list(dict.fromkeys(values))


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_broker_restart_mid_stream_every_event_arrives_once_in_order(
    tmp_path, make_broker, mean_model, protocol
):
    # broker persistence keeps the *test subscriber's* session across the restart, so it cannot
    # miss events sent before it reconnects; the daemon relies on its outbox alone
    broker = make_broker(persistence=True)
    subscriber = Subscriber(broker.host, broker.port, "steel-inspect/#", session=True)
    count = 60
    frames = {f"{i:03d}.png": frame_with_tiles([160 + i, 0]) for i in range(count)}
    images = write_frames(tmp_path / "frames", frames)
    config = config_for(tmp_path, broker, mean_model, images, camera={"rate": 30},
                        mqtt={"protocol": protocol})
    try:
        with running_daemon(config) as daemon:
            assert wait_until(lambda: len(subscriber.messages("/defects")) >= 10)
            broker.stop()
            assert wait_until(lambda: daemon.outbox.depth >= 5, timeout=5)
            assert not daemon.mqtt.ready.is_set()
            broker.start()
            assert wait_until(
                lambda: len({e["event_id"] for e in subscriber.payloads("/defects")}) == count,
                timeout=20,
            ), daemon.status_line()
            assert wait_until(lambda: daemon.outbox.depth == 0)
        events = subscriber.payloads("/defects")
        validate_messages(subscriber.messages())
    finally:
        subscriber.close()
    duplicates = len(events) - len({e["event_id"] for e in events})
    print(f"broker restart (MQTT {protocol}): {count} events, {duplicates} duplicates")
    assert unique_in_order(e["seq"] for e in events) == list(range(1, count + 1))
    assert sorted(unique_in_order(e["frame_id"] for e in events)) == sorted(frames)
    assert duplicates <= config.mqtt.max_inflight  # only what was in flight at the outage
    online = [s for s in subscriber.payloads("/status") if s["state"] == "online"]
    assert len(online) >= 2  # a birth on every connect


def test_refused_connection_is_an_error_in_log_and_state(
    tmp_path, make_broker, mean_model, caplog
):
    broker = make_broker(extra_config="allow_anonymous false\n")
    images = write_frames(tmp_path / "frames", {"a.png": frame_with_tiles([255])})
    config = config_for(tmp_path, broker, mean_model, images)
    with running_daemon(config, flush_timeout=0.0) as daemon:
        assert wait_until(lambda: daemon.mqtt.state.startswith("refused"))
        assert daemon.mqtt.state == "refused: Not authorized"
        assert "refused: Not authorized" in daemon.status_line()
        assert wait_until(lambda: daemon.outbox.depth == 1)  # the event waits in the outbox
        assert not daemon.mqtt.ready.is_set()
    assert "refused the connection: Not authorized" in caplog.text


class BlockingRuntime(Runtime):
    """Wraps a runtime; while `block` is set, infer() hangs like a stuck GPU driver call."""

    backend = "blocking"

    def __init__(self, inner: Runtime) -> None:
        self.inner = inner
        self.block = threading.Event()
        self.release = threading.Event()
        self.stuck = threading.Event()

    @property
    def input_spec(self):
        return self.inner.input_spec

    @property
    def num_outputs(self):
        return self.inner.num_outputs

    def infer(self, batch):
        if self.block.is_set():
            self.stuck.set()
            self.release.wait(30)
        return self.inner.infer(batch)

    def close(self):
        self.inner.close()


def test_watchdog_pings_follow_inference_progress(tmp_path, mqtt_broker, mean_model, monkeypatch):
    notify = NotifySocket(f"@steel-inspect-test-{os.getpid()}-{time.monotonic_ns()}")
    monkeypatch.setenv("NOTIFY_SOCKET", notify.address)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # ping every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    frames = {f"{i}.png": frame_with_tiles([0, 0]) for i in range(4)}
    images = write_frames(tmp_path / "frames", frames)
    config = config_for(tmp_path, mqtt_broker, mean_model, images,
                        camera={"rate": 40, "loop": True})
    loaded = load_model(mean_model, "onnxruntime", max_batch=4, threads=1)
    runtime = BlockingRuntime(loaded.runtime)
    try:
        with running_daemon(config, model=dataclasses.replace(loaded, runtime=runtime)) as daemon:
            assert wait_until(lambda: notify.lines("READY"))
            assert wait_until(lambda: len(notify.lines("WATCHDOG")) >= 5)
            runtime.block.set()
            assert runtime.stuck.wait(5)
            stuck_at = time.monotonic() + 0.05  # a ping sent just before may still be in transit
            time.sleep(0.8)
            assert notify.lines("WATCHDOG", since=stuck_at) == []
            assert daemon.stats.frames_in > daemon.stats.frames_processed
            runtime.block.clear()
            runtime.release.set()
            released_at = time.monotonic()
            assert wait_until(lambda: len(notify.lines("WATCHDOG", since=released_at)) >= 3)
        assert notify.lines("STOPPING") == ["1"]
        assert any(line.startswith("frames ") for line in notify.lines("STATUS"))
    finally:
        notify.close()


@pytest.fixture(autouse=True)
def _no_stray_threads():
    before = set(threading.enumerate())
    yield
    time.sleep(0.05)
    stray = [t.name for t in set(threading.enumerate()) - before if t.is_alive()
             and t.name in ("grabber", "inference", "publisher")]
    assert not stray, f"threads left running: {stray}"


def test_counter_of_defects_by_class_follows_the_events(tmp_path, mqtt_broker, mean_model):
    frames = {"a.png": frame_with_tiles([255, 200]), "b.png": frame_with_tiles([0, 0]),
              "c.png": frame_with_tiles([130, 0])}
    images = write_frames(tmp_path / "frames", frames)
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port)
    config = config_for(tmp_path, mqtt_broker, mean_model, images)
    try:
        with running_daemon(config, lossless=True) as daemon:
            assert wait_until(lambda: len(subscriber.messages("/defects")) == 2)
            assert wait_until(lambda: daemon.pipeline.finished)
            stats = daemon.stats
        validate_messages(subscriber.messages())
    finally:
        subscriber.close()
    assert stats.frames_processed == 3 and stats.events == 2
    names = Counter(d["class_name"] for e in subscriber.payloads("/defects") for d in e["defects"])
    assert stats.defects_by_class == names
    # frame a's two neighbouring rolled-in scale tiles are one defect object (events v2)
    assert names == {"rolled-in scale": 2, "scratches": 1}


def test_genicam_camera_frames_become_events(tmp_path, mqtt_broker, mean_model,
                                             viky_camera_config):
    # viky's simulated camera: a coloured ball on white, so nearly every tile is bright
    camera = viky_camera_config(width=512, height=256, frame_rate=50.0).model_dump(mode="json")
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port)
    sections = daemon_sections(tmp_path, mqtt_broker, mean_model, tmp_path)
    config = parse_config({**sections, "camera": camera})
    try:
        with running_daemon(config) as daemon:
            assert wait_until(lambda: len(subscriber.messages("/defects")) >= 10), \
                daemon.status_line()
            assert wait_until(lambda: subscriber.messages("/stats"))
        counts = validate_messages(subscriber.messages())
    finally:
        subscriber.close()
    stats = subscriber.payloads("/stats")[-1]
    assert stats["camera_state"] == "ok" and stats["frames_processed"] > 0
    assert counts["defects"] >= 10
    boxes = {tuple(d["box_px"]) for e in subscriber.payloads("/defects") for d in e["defects"]}
    # one tile, the other, or both as one defect object
    assert boxes <= {(0, 0, 256, 256), (256, 0, 256, 256), (0, 0, 512, 256)}
