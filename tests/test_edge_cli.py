"""The `edge` commands as a user (or systemd) runs them: replay, run, check."""

from __future__ import annotations

import signal
import sqlite3
import time

from edge.cli import main
from tests.fixtures.broker import Subscriber, wait_until
from tests.fixtures.edge_daemon import (
    CLASS_NAMES,
    TILE,
    DaemonProcess,
    NotifySocket,
    daemon_sections,
    expected_classes,
    frame_with_tiles,
    validate_messages,
    write_config,
    write_frames,
)


def test_replay_publishes_what_the_model_sees_and_waits_for_every_ack(
    tmp_path, mqtt_broker, mean_model, mqtt_subscriber
):
    values = {f"{i:02d}.png": [(i * 53) % 256, 0, 255 if i % 4 == 0 else 10] for i in range(16)}
    images = write_frames(tmp_path / "frames", {n: frame_with_tiles(v) for n, v in values.items()})
    (images / "99-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    config = write_config(tmp_path / "edge.toml",
                          daemon_sections(tmp_path, mqtt_broker, mean_model, images))
    expected = {
        name: sorted((c, [i * TILE, 0, TILE, TILE]) for i, v in enumerate(tiles)
                     for c in expected_classes(v))
        for name, tiles in values.items()
    }
    expected = {name: found for name, found in expected.items() if found}

    daemon = DaemonProcess(config, "--images", str(images), command="replay")
    try:
        assert daemon.wait(60) == 0, daemon.log
    finally:
        daemon.stop()
    # every event was acknowledged before the command exited, so the subscriber has it already
    assert wait_until(lambda: len(mqtt_subscriber.messages("/defects")) >= len(expected), timeout=2)
    events = mqtt_subscriber.payloads("/defects")
    counts = validate_messages(mqtt_subscriber.messages())
    assert counts["defects"] == len(expected) and counts["status"] >= 2
    got = {e["frame_id"]: sorted((d["class_id"], d["box_px"]) for d in e["defects"])
           for e in events}
    assert got == expected
    assert [e["seq"] for e in events] == list(range(1, len(expected) + 1))
    frames_per_class = {
        n: sum(any(c == k + 1 for c, _ in f) for f in expected.values())
        for k, n in enumerate(CLASS_NAMES)
    }
    log = daemon.log
    assert "frames:     16 processed, 0 failed, 1 files skipped" in log
    assert f"events:     {len(expected)} ({len(expected)} acknowledged, 0 left" in log
    for name, frames in frames_per_class.items():
        assert f"{name:<14} {frames:>6}" in log
    statuses = [s["state"] for s in mqtt_subscriber.payloads("/status")]
    assert statuses[0] == "online" and statuses[-1] == "stopped"


def test_run_under_systemd_notifies_pings_and_stops_cleanly_on_sigterm(
    tmp_path, mqtt_broker, mean_model, mqtt_subscriber
):
    notify = NotifySocket(str(tmp_path / "notify.sock"))
    images = write_frames(tmp_path / "frames",
                          {f"{i}.png": frame_with_tiles([255, 0]) for i in range(5)})
    sections = daemon_sections(tmp_path, mqtt_broker, mean_model, images,
                               camera={"rate": 20, "loop": True})
    config = write_config(tmp_path / "edge.toml", sections)
    daemon = DaemonProcess(config, env={"NOTIFY_SOCKET": notify.address,
                                        "WATCHDOG_USEC": "400000"})
    try:
        assert wait_until(lambda: notify.lines("READY"), timeout=15), daemon.log
        ready_at = time.monotonic()
        assert wait_until(lambda: len(notify.lines("WATCHDOG", since=ready_at)) >= 4,
                          timeout=15), daemon.log
        assert wait_until(lambda: len(mqtt_subscriber.messages("/defects")) >= 5, timeout=15)
        assert wait_until(lambda: mqtt_subscriber.messages("/stats"), timeout=15)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, daemon.log
    finally:
        daemon.stop()
        notify.close()
    assert notify.lines("STOPPING") == ["1"]
    assert notify.lines("STATUS")
    status = mqtt_subscriber.messages("/status")
    assert [m.json()["state"] for m in status][-1] == "stopped"
    validate_messages(mqtt_subscriber.messages())
    seqs = [e["seq"] for e in mqtt_subscriber.payloads("/defects")]
    assert seqs == list(range(1, len(seqs) + 1))
    stats = mqtt_subscriber.payloads("/stats")[-1]
    assert stats["frames_processed"] > 0 and stats["camera_state"] == "ok"
    assert stats["inference_ms"]["p50"] is not None
    # a subscriber arriving later sees the retained state
    late = Subscriber(mqtt_broker.host, mqtt_broker.port, "steel-inspect/+/+/status")
    try:
        assert wait_until(lambda: late.messages(), timeout=5)
        assert late.messages()[0].retain and late.payloads("/status")[0]["state"] == "stopped"
    finally:
        late.close()


def outbox_rows(path) -> list[tuple[int, str]]:
    """(seq, event_id) of the events in a daemon's outbox, read beside the running daemon."""
    if not path.exists():
        return []
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT seq, event_id FROM events ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        db.close()


def test_kill9_restart_replays_the_outbox_continues_seq_and_the_will_says_offline(
    tmp_path, make_broker, mean_model
):
    broker = make_broker()
    broker.stop()  # phase 1: no broker, events pile up in the outbox
    first = write_frames(tmp_path / "first",
                         {f"{i}.png": frame_with_tiles([255]) for i in range(8)})
    second = write_frames(tmp_path / "second",
                          {f"{i}.png": frame_with_tiles([200]) for i in range(4)})
    # `edge run` drops the oldest frames when inference lags; a rate keeps every frame here
    sections = daemon_sections(tmp_path, broker, mean_model, first, camera={"rate": 40})
    outbox = tmp_path / "state" / "outbox.sqlite"
    daemon = DaemonProcess(write_config(tmp_path / "edge.toml", sections))
    try:
        assert wait_until(lambda: len(outbox_rows(outbox)) == 8, timeout=15), daemon.log
        daemon.signal(signal.SIGKILL)
        daemon.wait(10)
    finally:
        daemon.stop()
    stored = outbox_rows(outbox)
    assert [seq for seq, _ in stored] == list(range(1, 9))

    broker.start()  # phase 2: same port
    subscriber = Subscriber(broker.host, broker.port, "steel-inspect/#")
    sections["camera"]["path"] = str(second)
    daemon = DaemonProcess(write_config(tmp_path / "edge.toml", sections))
    try:
        assert wait_until(lambda: len(subscriber.messages("/defects")) >= 12,
                          timeout=15), daemon.log
        assert wait_until(lambda: outbox_rows(outbox) == [], timeout=15)
        assert subscriber.payloads("/status")[-1]["state"] == "online"
        daemon.signal(signal.SIGKILL)
        daemon.wait(10)
        assert wait_until(lambda: subscriber.payloads("/status")[-1]["state"] == "offline",
                          timeout=10)
        events = subscriber.payloads("/defects")
        validate_messages(subscriber.messages())
    finally:
        daemon.stop()
        subscriber.close()
    assert [e["seq"] for e in events] == list(range(1, 13))
    assert [e["event_id"] for e in events[:8]] == [event_id for _, event_id in stored]
    assert {e["frame_id"] for e in events[8:]} == {f"{i}.png" for i in range(4)}
    will = subscriber.messages("/status")[-1].json()
    assert set(will) == {"schema", "state", "line", "camera", "connection", "connection_ts"}
    assert will["state"] == "offline" and (will["line"], will["camera"]) == ("L1", "cam1")


def test_check_passes_when_everything_is_there_and_never_prints_the_password(
    tmp_path, mqtt_broker, mean_model, capsys
):
    images = write_frames(tmp_path / "frames", {"a.png": frame_with_tiles([1, 2])})
    (tmp_path / "password").write_text("hunter2-secret\n")
    sections = daemon_sections(tmp_path, mqtt_broker, mean_model, images,
                               mqtt={"username": "line1", "password_file": "password"})
    config = write_config(tmp_path / "edge.toml", sections)
    assert main(["check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()}
    assert rows == {"config": "OK", "model": "OK", "camera": "OK", "inference": "OK",
                    "outbox": "OK", "broker": "OK", "tracking": "OK"}
    assert "camera frame: no defects, outputs valid" in out
    assert "a.png 512x256" in out and "mean-model test-1" in out
    # the hand-made mean model has no cam output: boxes stay tile-sized, and check says so
    assert "no class activation map output 'cam': defect boxes stay tile-sized" in out
    assert "hunter2" not in out and "password from" in out


def test_check_reports_each_failure_with_its_reason(tmp_path, make_broker, mean_model, capsys):
    broker = make_broker(extra_config="allow_anonymous false\n")
    sections = daemon_sections(tmp_path, broker, tmp_path / "none.onnx", tmp_path / "no-frames")
    config = write_config(tmp_path / "edge.toml", sections)
    assert main(["check", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "FAIL" in lines["model"] and "none.onnx: model file not found" in lines["model"]
    assert "FAIL" in lines["camera"] and "no-frames: folder not found" in lines["camera"]
    assert "FAIL" in lines["broker"] and "refused: Not authorized" in lines["broker"]
    assert "OK" in lines["config"] and "OK" in lines["outbox"]

    sections["mqtt"]["port"] = 70000
    write_config(config, sections)
    assert main(["check", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "mqtt.port: Input should be less than or equal to 65535 (got 70000)" in out
    assert out.count("SKIP") == 6


def test_config_errors_are_one_line_on_the_command_line(tmp_path, capsys):
    (tmp_path / "edge.toml").write_text("[site]\nline = 'L1'\ncamera = 'c'\nfoo = 1\n")
    assert main(["run", "--config", str(tmp_path / "edge.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"edge run: error: {tmp_path / 'edge.toml'}: site.foo: unknown key"
