"""Reliability: camera faults under the running daemon (GenICam source on the viky.cti producer).

Two faults a line camera shows, made with what viky.cti offers:
- the device disappears: its GenTL handles are destroyed under the source (as when a GigE camera
  reboots) and, for a while, the producer cannot even be loaded (its .cti is a symlink the test
  removes), so every reconnect attempt fails until the test puts it back;
- the producer stops delivering: AcquisitionStop is executed on the device behind the source's
  back, so the camera still answers but sends no more frames (free run).
Each time the stats topic and the daemon's status line must show `lost`, then `ok` again with
frames flowing, reconnect attempts spaced by the backoff, and the daemon must keep running.
"""

from __future__ import annotations

import signal
import time

import pytest

from edge.config import parse_config
from tests.fixtures.broker import Subscriber
from tests.fixtures.edge_daemon import (
    DaemonProcess,
    daemon_sections,
    validate_messages,
    write_config,
)
from tests.fixtures.reliability import running_daemon, wait_until

BACKOFF = {"initial": 0.2, "max": 0.8}


@pytest.fixture
def camera_daemon_config(tmp_path, mqtt_broker, mean_model, viky_cti):
    producer = tmp_path / "producer" / "viky.cti"
    producer.parent.mkdir()
    producer.symlink_to(viky_cti)
    sections = daemon_sections(
        tmp_path, mqtt_broker, mean_model, tmp_path,
        mqtt={"stats_interval": 0.2},
        events={"min_score": 0.999},  # the white viky scene would be an event per frame
    )
    sections["camera"] = {
        "type": "genicam", "cti": [str(producer)], "serial": "1", "pixel_format": "Mono8",
        "width": 512, "height": 256, "frame_rate": 30.0, "fetch_timeout": 0.5,
        "reconnect": BACKOFF,
    }
    return parse_config(sections), producer, viky_cti


def camera_states(subscriber) -> list[str]:
    return [s["camera_state"] for s in subscriber.payloads("/stats")]


def goes_lost(daemon, subscriber, since: int, fault_at: float) -> float:
    """Wait for `lost` on the stats topic (after message `since`); seconds since the fault."""
    assert wait_until(lambda: "lost" in camera_states(subscriber)[since:], timeout=10)
    assert "lost" in daemon.status_line()
    return time.monotonic() - fault_at


def comes_back(daemon, subscriber, since: float) -> float:
    """Wait for `ok` on the stats topic and 10 new frames; seconds since `since`."""
    assert wait_until(lambda: camera_states(subscriber)[-1] == "ok", timeout=10)
    frames = daemon.stats.frames_in
    assert wait_until(lambda: daemon.stats.frames_in >= frames + 10, timeout=5)
    return time.monotonic() - since


def test_camera_disappears_and_stops_delivering_daemon_recovers(
    camera_daemon_config, mqtt_broker
):
    config, producer, viky_cti = camera_daemon_config
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, "steel-inspect/#")
    try:
        with running_daemon(config) as daemon:
            source = daemon.source
            assert wait_until(lambda: daemon.stats.frames_processed >= 10, timeout=15)
            assert wait_until(lambda: camera_states(subscriber)[-1:] == ["ok"])

            # fault 1: the device disappears for 2 s
            since = len(subscriber.payloads("/stats"))
            before = source.counters
            with source._device_lock:
                producer.unlink()
                source._acquirer.destroy()
            gone_lost_s = goes_lost(daemon, subscriber, since, time.monotonic())
            time.sleep(2.0 - gone_lost_s)
            during = source.counters
            producer.symlink_to(viky_cti)
            gone_ok_s = comes_back(daemon, subscriber, time.monotonic())
            after_gone = source.counters

            # fault 2: the camera keeps answering but sends no more frames
            since = len(subscriber.payloads("/stats"))
            with source._device_lock:
                source._acquirer.remote_device.node_map.AcquisitionStop.execute()
            stopped_at = time.monotonic()
            stall_lost_s = goes_lost(daemon, subscriber, since, stopped_at)
            stall_ok_s = comes_back(daemon, subscriber, stopped_at)
            after_stall = source.counters

            assert all(t.is_alive() for t in daemon.pipeline._threads)
            stats = daemon.stats_message()
        validate_messages(subscriber.messages())
    finally:
        subscriber.close()

    attempts = during["reconnects"] - before["reconnects"]
    print(
        f"\ncamera gone 2 s: lost after {gone_lost_s:.2f} s, ok again {gone_ok_s:.2f} s after "
        f"the producer came back, {attempts} failed reconnects while gone; stopped delivering: "
        f"lost after {stall_lost_s:.2f} s, ok again {stall_ok_s:.2f} s after the stop; "
        f"counters {after_stall}"
    )
    # backoff 0.2, 0.4, 0.8, 0.8...: 3..5 attempts in 2 s (without backoff: hundreds)
    assert 2 <= attempts <= 5, during
    assert after_gone["reconnects"] > during["reconnects"]
    assert after_stall["reconnects"] > after_gone["reconnects"]
    assert stats["camera_state"] == "ok" and stats["frames_processed"] > 0



def test_run_with_an_absent_camera_keeps_running_and_retrying(
    tmp_path, mqtt_broker, mean_model, viky_cti
):
    sections = daemon_sections(tmp_path, mqtt_broker, mean_model, tmp_path,
                               mqtt={"stats_interval": 0.5})
    sections["camera"] = {"type": "genicam", "cti": [str(viky_cti)], "serial": "99",
                          "reconnect": BACKOFF}
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, "steel-inspect/#")
    daemon = DaemonProcess(write_config(tmp_path / "edge.toml", sections))
    try:
        assert wait_until(lambda: len(subscriber.payloads("/stats")) >= 2, timeout=30), daemon.log
        first = subscriber.payloads("/stats")[-1]
        time.sleep(3.0)
        assert daemon.process.poll() is None, daemon.log
        last = subscriber.payloads("/stats")[-1]
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, daemon.log
    finally:
        daemon.stop()
        subscriber.close()
    assert first["camera_state"] == last["camera_state"] == "lost"
    retries = last["camera_counters"]["reconnects"] - first["camera_counters"]["reconnects"]
    assert 3 <= retries <= 6  # one per backoff.max (0.8 s) in 3 s
    assert "camera lost: no camera with serial '99'" in daemon.log
