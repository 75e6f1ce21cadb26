"""Hot swap (edge.inference.reload): a new model is taken between two frames, no frame or event
is lost or doubled, events name their model, and a broken new model keeps the old one."""

from __future__ import annotations

import signal

from edge.config import parse_config
from tests.fixtures.broker import Subscriber, wait_until
from tests.fixtures.edge_daemon import (
    DaemonProcess,
    daemon_sections,
    frame_with_tiles,
    validate_messages,
    write_config,
    write_frames,
    write_mean_model,
)
from tests.fixtures.reliability import running_daemon

COUNT = 60


def white_frames(tmp_path):
    frames = {f"{i:03d}.png": frame_with_tiles([255, 0]) for i in range(COUNT)}
    return frames, write_frames(tmp_path / "frames", frames)


def names_in_order(events) -> list[str]:
    return list(dict.fromkeys(e["model"]["name"] for e in events))


def test_swap_under_a_lossless_stream_processes_every_frame_once(tmp_path, mqtt_broker):
    model = write_mean_model(tmp_path / "model", name="model-a")
    frames, images = white_frames(tmp_path)
    sections = daemon_sections(tmp_path, mqtt_broker, model, images, camera={"rate": 40})
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, "steel-inspect/#")
    try:
        with running_daemon(parse_config(sections), lossless=True) as daemon:
            assert wait_until(lambda: len(subscriber.messages("/defects")) >= 10)
            write_mean_model(tmp_path / "model", name="model-b")  # a new engine at model.path
            assert daemon.reload()
            assert wait_until(lambda: daemon.reloader.swaps == 1, timeout=15)
            assert daemon.model.card.name == "model-b"
            assert wait_until(lambda: len(subscriber.messages("/defects")) >= COUNT, timeout=20)
            assert daemon.stats.frames_processed == COUNT
            assert wait_until(lambda: subscriber.payloads("/status")[-1]["model"]["name"]
                              == "model-b")  # the birth is re-published with the new model
        events = subscriber.payloads("/defects")
        validate_messages(subscriber.messages())
    finally:
        subscriber.close()
    assert sorted(e["frame_id"] for e in events) == sorted(frames)  # each frame exactly once
    assert names_in_order(events) == ["model-a", "model-b"]  # old, then new, never mixed again
    swapped_at = [e["model"]["name"] for e in events].index("model-b")
    assert 10 <= swapped_at < COUNT
    print(f"hot swap: {COUNT} frames, swapped after {swapped_at} events, none lost or doubled")


def test_broken_new_model_keeps_the_old_one_and_says_why(tmp_path, mqtt_broker, caplog):
    model = write_mean_model(tmp_path / "model", name="model-a")
    frames, images = white_frames(tmp_path)
    sections = daemon_sections(tmp_path, mqtt_broker, model, images, camera={"rate": 40})
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, "steel-inspect/#")
    try:
        with running_daemon(parse_config(sections), lossless=True) as daemon:
            assert wait_until(lambda: len(subscriber.messages("/defects")) >= 5)
            model.write_bytes(b"half-copied engine")
            assert daemon.reload()
            assert wait_until(lambda: daemon.reloader.last_error is not None, timeout=15)
            assert "does not match its manifest" in daemon.reloader.last_error
            assert daemon.reloader.swaps == 0 and daemon.model.card.name == "model-a"
            assert wait_until(lambda: len(subscriber.messages("/defects")) >= COUNT, timeout=20)
        events = subscriber.payloads("/defects")
    finally:
        subscriber.close()
    assert sorted(e["frame_id"] for e in events) == sorted(frames)
    assert names_in_order(events) == ["model-a"]
    assert any("model reload failed, keeping the running model" in r.getMessage()
               for r in caplog.records)


def test_sighup_reloads_the_model_in_edge_run(tmp_path, mqtt_broker):
    model = write_mean_model(tmp_path / "model", name="model-a")
    frames = {f"{i:03d}.png": frame_with_tiles([255]) for i in range(200)}
    images = write_frames(tmp_path / "frames", frames)
    sections = daemon_sections(tmp_path, mqtt_broker, model, images, camera={"rate": 20})
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, "steel-inspect/#")
    daemon = DaemonProcess(write_config(tmp_path / "edge.toml", sections))
    try:
        assert wait_until(lambda: len(subscriber.messages("/defects")) >= 2, timeout=20), daemon.log
        write_mean_model(tmp_path / "model", name="model-b")
        daemon.signal(signal.SIGHUP)
        assert wait_until(lambda: "model-b" in names_in_order(subscriber.payloads("/defects")),
                          timeout=20), daemon.log
        assert daemon.process.poll() is None
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        daemon.stop()
        subscriber.close()
    assert "received SIGHUP: reloading the model" in daemon.log and "model swapped" in daemon.log
