"""Reliability: `edge run` killed with SIGKILL mid-stream, three times, and restarted each time.

Frames flow at a steady rate and the broker stays up, so each kill lands while events are being
stored, sent and acknowledged. Each run replays its own folder of frames (a camera goes on
producing while the daemon is down; those frames are never seen). After each kill the test reads
what the outbox kept; after the restarts it checks that every stored event arrived, that seq
went on from the last stored one without a gap, and that each run's events cover a prefix of its
frames with no hole (only the frames still in memory at the kill can be missing, at the end).
"""

from __future__ import annotations

import random
import signal
import sqlite3

import pytest

from tests.fixtures.broker import Subscriber
from tests.fixtures.edge_daemon import (
    DaemonProcess,
    daemon_sections,
    frame_with_tiles,
    validate_messages,
    write_config,
    write_frames,
)
from tests.fixtures.reliability import wait_until

RATE = 20.0
FRAMES_PER_RUN = 60
KILLS = 3


def outbox_state(path) -> tuple[list[tuple[int, str]], int]:
    """(seq, event_id) of the events still stored, and the last seq given, after a kill."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT seq, event_id FROM events ORDER BY id").fetchall()
        last = db.execute("SELECT value FROM meta WHERE key = 'seq:L1/cam1'").fetchone()
    finally:
        db.close()
    return rows, last[0] if last else 0


def run_frames(events: list[dict], run: int) -> list[str]:
    return [e["frame_id"] for e in events if e["frame_id"].startswith(f"r{run}-")]


@pytest.mark.slow
def test_kill9_mid_stream_three_times_loses_no_stored_event(tmp_path, mqtt_broker, mean_model):
    rng = random.Random(11)
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, "steel-inspect/#")
    outbox = tmp_path / "state" / "outbox.sqlite"
    folders = [
        write_frames(tmp_path / f"run{r}",
                     {f"r{r}-{i:03d}.png": frame_with_tiles([200, 0])
                      for i in range(FRAMES_PER_RUN)})
        for r in range(KILLS + 1)
    ]
    kills = []  # per killed run: (events it had published when killed, stored rows, last seq)
    try:
        for run, folder in enumerate(folders):
            sections = daemon_sections(tmp_path, mqtt_broker, mean_model, folder,
                                       camera={"rate": RATE})
            daemon = DaemonProcess(write_config(tmp_path / "edge.toml", sections))
            try:
                if run < KILLS:
                    kill_after = rng.randint(10, 40)
                    assert wait_until(
                        lambda r=run, k=kill_after:
                        len(run_frames(subscriber.payloads("/defects"), r)) >= k,
                        timeout=90,
                    ), daemon.log
                    daemon.signal(signal.SIGKILL)
                    assert daemon.wait(30) == -signal.SIGKILL
                    kills.append((kill_after, *outbox_state(outbox)))
                else:
                    assert wait_until(
                        lambda r=run: len(set(run_frames(subscriber.payloads("/defects"), r)))
                        == FRAMES_PER_RUN, timeout=90,
                    ), daemon.log
                    daemon.signal(signal.SIGTERM)
                    assert daemon.wait(60) == 0, daemon.log
            finally:
                daemon.stop()
        events = subscriber.payloads("/defects")
        validate_messages(subscriber.messages())
    finally:
        subscriber.close()

    first_seen: dict[str, dict] = {}
    for event in events:
        first_seen.setdefault(event["event_id"], event)
    unique = list(first_seen.values())
    duplicates = len(events) - len(unique)
    final_seq = max(e["seq"] for e in unique)
    kept = [len(rows) for _, rows, _ in kills]
    per_run = [len(set(run_frames(unique, r))) for r in range(KILLS + 1)]
    print(
        f"\nkill -9 x{KILLS} at {RATE:g} frames/s: events per run {per_run} "
        f"(of {FRAMES_PER_RUN} frames each), events left in the outbox at each kill {kept}, "
        f"{len(unique)} events with seq 1..{final_seq}, {duplicates} duplicates"
    )
    assert [e["seq"] for e in unique] == list(range(1, final_seq + 1))  # in order, no gap
    for run, (_, rows, last_seq) in enumerate(kills):
        got = {e["event_id"] for e in unique}
        assert {event_id for _, event_id in rows} <= got  # the outbox was replayed
        next_run = [e["seq"] for e in unique if e["frame_id"].startswith(f"r{run + 1}-")]
        assert min(next_run) == last_seq + 1  # seq goes on from the last stored one
        frames = run_frames(unique, run)
        expected = sorted(p.name for p in folders[run].iterdir())[: len(frames)]
        assert frames == expected  # a prefix of the run's frames: no hole
    assert per_run[-1] == FRAMES_PER_RUN
