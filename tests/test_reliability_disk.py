"""Reliability: disk pressure on the outbox.

- The outbox at its size cap (`outbox.max_mb`) while the broker is away: the oldest events are
  dropped with a warning and counted (`outbox_dropped` on the stats topic); the newest arrive,
  in order, when the broker is back.
- A full filesystem under the running `edge run`: the outbox lives on a small tmpfs which the
  test fills with another file, as a runaway log would. Storing fails (SQLITE_FULL), is logged
  and counted (`outbox_errors`), the daemon keeps running, and once the file is deleted events
  are stored and delivered again; the events lost meanwhile show as a gap in `seq`.
"""

from __future__ import annotations

import signal
import sqlite3
import time

import pytest

from edge.config import parse_config
from tests.fixtures.broker import Subscriber
from tests.fixtures.edge_daemon import (
    DaemonProcess,
    daemon_sections,
    frame_with_tiles,
    validate_messages,
    write_config,
    write_frames,
)
from tests.fixtures.reliability import fill_filesystem, running_daemon, wait_until


def test_outbox_at_its_cap_drops_the_oldest_with_a_warning_and_a_counter(
    tmp_path, make_broker, mean_model, caplog
):
    count, cap_mb = 100, 0.02  # ~450-byte events: about 44 fit in 20 kB
    images = write_frames(
        tmp_path / "frames", {f"{i:03d}.png": frame_with_tiles([200, 0]) for i in range(count)}
    )
    broker = make_broker()
    broker.stop()
    config = parse_config(daemon_sections(tmp_path, broker, mean_model, images,
                                          outbox={"max_mb": cap_mb}))
    with running_daemon(config, lossless=True) as daemon:
        assert wait_until(lambda: daemon.pipeline.finished and daemon.publisher.queued == 0)
        assert wait_until(lambda: daemon.outbox.depth + daemon.outbox.dropped == count)
        kept, dropped = daemon.outbox.depth, daemon.outbox.dropped
        broker.start()
        subscriber = Subscriber(broker.host, broker.port, "steel-inspect/#")
        try:
            assert wait_until(lambda: daemon.outbox.depth == 0, timeout=15), daemon.status_line()
            assert wait_until(lambda: len(subscriber.messages("/defects")) >= kept)
            assert wait_until(lambda: subscriber.payloads("/stats"))
            stats = subscriber.payloads("/stats")[-1]
            events = subscriber.payloads("/defects")
            validate_messages(subscriber.messages())
        finally:
            subscriber.close()
    payload_bytes = kept * max(len(str(e)) for e in events)
    print(f"\noutbox cap {cap_mb * 1e3:g} kB: {count} events, {dropped} oldest dropped, "
          f"{kept} kept and delivered")
    assert dropped > 0 and kept > 0 and payload_bytes <= 2 * cap_mb * 1e6
    assert [e["seq"] for e in events] == list(range(dropped + 1, count + 1))  # the newest
    assert stats["outbox_dropped"] == dropped and stats["outbox_errors"] == 0
    assert "dropped the" in caplog.text and "oldest unsent events" in caplog.text


@pytest.mark.slow
def test_full_filesystem_is_counted_not_fatal_and_recovers(
    tmp_path, mqtt_broker, mean_model, small_filesystem
):
    # 8 MiB: room for the database and its write-ahead log (up to 4 MiB before a checkpoint)
    disk = small_filesystem(8)
    images = write_frames(
        tmp_path / "frames", {f"{i:02d}.png": frame_with_tiles([200, 0]) for i in range(10)}
    )
    sections = daemon_sections(tmp_path, mqtt_broker, mean_model, images,
                               camera={"rate": 20, "loop": True}, mqtt={"stats_interval": 0.5},
                               outbox={"path": str(disk / "outbox.sqlite")})
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, "steel-inspect/#")
    daemon = DaemonProcess(write_config(tmp_path / "edge.toml", sections))
    try:
        assert wait_until(lambda: len(subscriber.messages("/defects")) >= 20, 30), daemon.log
        filler = fill_filesystem(disk)
        filled = time.monotonic()
        full_at = len(subscriber.messages("/defects"))
        assert wait_until(lambda: _last_stats(subscriber).get("outbox_errors", 0) >= 3,
                          timeout=30), daemon.log
        time.sleep(2.0)
        assert daemon.process.poll() is None, daemon.log
        during = _last_stats(subscriber)
        filler.unlink()
        full_s = time.monotonic() - filled
        freed_at = len(subscriber.messages("/defects"))
        assert wait_until(lambda: len(subscriber.messages("/defects")) >= freed_at + 20, 30)
        assert wait_until(lambda: _last_stats(subscriber)["outbox_depth"] <= 2, timeout=10)
        after = _last_stats(subscriber)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, daemon.log
        left = _outbox_rows(disk / "outbox.sqlite")
        events = subscriber.payloads("/defects")
        validate_messages(subscriber.messages())
    finally:
        daemon.stop()
        subscriber.close()

    seqs = sorted({e["seq"] for e in events})
    missing = sorted(set(range(1, seqs[-1] + 1)) - set(seqs))
    print(
        f"\nfull filesystem for {full_s:.1f} s: {during['outbox_errors']} failed outbox "
        f"operations (appends, retried deletes), {len(missing)} events lost while full "
        f"(seq gap {missing[0]}..{missing[-1]}), {len(events) - freed_at} events after "
        f"the space was freed, {left} events left in the outbox after a clean stop"
    )
    assert left == 0  # acknowledged events refused deletion while full were deleted later
    assert missing and missing == list(range(missing[0], missing[-1] + 1))  # one gap
    assert full_at - 5 <= missing[0] - 1  # the gap starts when the disk filled up
    assert after["outbox_errors"] >= 3 and after["frames_processed"] > during["frames_processed"]
    assert "database or disk is full" in daemon.log
    assert "Traceback" not in daemon.log


def _last_stats(subscriber) -> dict:
    stats = subscriber.payloads("/stats")
    return stats[-1] if stats else {}


def _outbox_rows(path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        db.close()
