"""`edge run` and SIGHUP: logged and ignored (it used to kill the daemon without a word)."""

from __future__ import annotations

import signal

from tests.fixtures.broker import Subscriber, wait_until
from tests.fixtures.edge_daemon import (
    DaemonProcess,
    daemon_sections,
    frame_with_tiles,
    write_config,
    write_frames,
)


def test_sighup_is_logged_and_the_daemon_keeps_running(tmp_path, mqtt_broker, mean_model):
    frames = {f"{i:02d}.png": frame_with_tiles([255]) for i in range(40)}
    images = write_frames(tmp_path / "frames", frames)
    sections = daemon_sections(tmp_path, mqtt_broker, mean_model, images, camera={"rate": 10})
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, "steel-inspect/#")
    daemon = DaemonProcess(write_config(tmp_path / "edge.toml", sections))
    try:
        assert wait_until(lambda: len(subscriber.messages("/defects")) >= 2, timeout=20), daemon.log
        daemon.signal(signal.SIGHUP)
        assert wait_until(lambda: "received SIGHUP: ignored" in daemon.log, timeout=10), daemon.log
        seen = len(subscriber.messages("/defects"))
        assert wait_until(lambda: len(subscriber.messages("/defects")) >= seen + 3, timeout=10)
        assert daemon.process.poll() is None
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        daemon.stop()
        subscriber.close()
    assert "only on a restart" in daemon.log
