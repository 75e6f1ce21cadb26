"""Reliability: the broker goes away for 30 s while frames flow; nothing is lost, order is kept.

The daemon runs in-process on a real mosquitto with a replay camera at a steady rate; every event
the pipeline hands to the publisher is recorded (event_id and the seq the outbox gives it), so the
test knows exactly which events must reach the subscriber. The subscriber keeps a persistent
session on a broker with persistence, so it cannot miss what the daemon sends while it reconnects;
the daemon itself relies on its outbox alone (clean session).
"""

from __future__ import annotations

import time

import pytest

from edge.config import parse_config
from edge.delivery.publisher import Publisher
from tests.fixtures.broker import Subscriber
from tests.fixtures.edge_daemon import (
    daemon_sections,
    frame_with_tiles,
    validate_messages,
    write_frames,
)
from tests.fixtures.reliability import running_daemon, wait_until

RATE = 10.0  # frames (= events) per second
OUTAGE_S = 30.0
BEFORE_S = 4.0
AFTER_S = 6.0


@pytest.fixture
def recorded_events(monkeypatch) -> list[dict]:
    """Every event submitted to the publisher, in submission order (the dicts get their seq)."""
    events: list[dict] = []
    submit = Publisher.submit

    def recording_submit(self, kind, event):
        taken = submit(self, kind, event)
        if taken and kind == "defects":
            events.append(event)
        return taken

    monkeypatch.setattr(Publisher, "submit", recording_submit)
    return events


@pytest.mark.slow
def test_broker_down_30s_every_event_arrives_in_order(
    tmp_path, make_broker, mean_model, recorded_events
):
    count = int(RATE * (BEFORE_S + OUTAGE_S + AFTER_S))
    images = write_frames(
        tmp_path / "frames", {f"{i:04d}.png": frame_with_tiles([200, 0]) for i in range(count)}
    )
    broker = make_broker(persistence=True)
    subscriber = Subscriber(broker.host, broker.port, "steel-inspect/#", session=True)
    sections = daemon_sections(
        tmp_path, broker, mean_model, images,
        camera={"rate": RATE},
        mqtt={"reconnect": {"initial": 0.5, "max": 2.0}, "stats_interval": 1.0},
    )
    config = parse_config(sections)
    peak_depth = 0
    try:
        with running_daemon(config) as daemon:
            assert wait_until(lambda: len(subscriber.messages("/defects")) >= RATE * BEFORE_S / 2)
            broker.stop()
            down_at = time.monotonic()
            while time.monotonic() - down_at < OUTAGE_S:
                peak_depth = max(peak_depth, daemon.outbox.depth)
                assert not daemon.mqtt.ready.is_set()
                time.sleep(0.1)
            state_during_outage = daemon.mqtt.state
            backlog_seq = daemon.outbox.last_seq
            broker.start()
            up_at = time.monotonic()
            assert wait_until(lambda: daemon.mqtt.ready.is_set(), timeout=10), daemon.status_line()
            reconnect_s = time.monotonic() - up_at
            assert wait_until(
                lambda: {e["seq"] for e in subscriber.payloads("/defects")}
                >= set(range(1, backlog_seq + 1)), timeout=30,
            )
            backlog_s = time.monotonic() - up_at
            assert wait_until(lambda: daemon.pipeline.finished, timeout=AFTER_S + 30)
            assert wait_until(lambda: daemon.outbox.depth == 0 and daemon.publisher.idle, 20)
            drained_s = time.monotonic() - up_at
            assert wait_until(
                lambda: len({e["event_id"] for e in subscriber.payloads("/defects")})
                >= len(recorded_events), timeout=10,
            )
            stats = daemon.stats_message()
        received = subscriber.payloads("/defects")
        validate_messages(subscriber.messages())
    finally:
        subscriber.close()

    sent = {e["event_id"]: e["seq"] for e in recorded_events}
    first_seen: dict[str, int] = {}
    for event in received:
        first_seen.setdefault(event["event_id"], event["seq"])
    duplicates = len(received) - len(first_seen)
    print(
        f"\nbroker outage {OUTAGE_S:.0f} s at {RATE:g} events/s: {len(sent)} events, "
        f"{len(first_seen)} received, {len(set(sent) - set(first_seen))} missing, "
        f"{duplicates} duplicates; outbox peak {peak_depth}; state during the outage "
        f"{state_during_outage!r}; reconnected {reconnect_s:.1f} s and "
        f"the {backlog_seq} events stored so far arrived {backlog_s:.1f} s after the broker "
        f"came back (all drained at {drained_s:.1f} s, when the replay ended)"
    )
    assert len(sent) == count and stats["frames_dropped"] == 0 and stats["frames_failed"] == 0
    assert first_seen == sent  # every event, by event_id, with the seq it was stored with
    seqs_in_arrival_order = list(first_seen.values())
    assert seqs_in_arrival_order == list(range(1, count + 1))  # order kept, no gap
    assert duplicates <= config.mqtt.max_inflight  # only what was in flight at the cut
    assert peak_depth >= RATE * OUTAGE_S * 0.8  # the outage really held the events back
    assert state_during_outage.startswith(("unreachable", "disconnected"))
    assert stats["outbox_dropped"] == 0 and stats["outbox_errors"] == 0
