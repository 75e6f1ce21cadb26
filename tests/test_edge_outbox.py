"""The SQLite outbox: order, persistent seq, size bound, a full database, the single-user lock."""

from __future__ import annotations

import sqlite3

import pytest

from edge.delivery.outbox import WAL_LIMIT_BYTES, Outbox
from edge.errors import ConfigError

TOPIC = "steel-inspect/L1/cam1/defects"


def events(count: int, size: int = 100) -> list[dict]:
    return [{"event_id": f"{i:032x}", "pad": "x" * size} for i in range(count)]


def test_events_keep_their_order_and_seq_survives_a_reopen(tmp_path):
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(path, max_bytes=10**6, stream="L1/cam1")
    batch = events(5)
    assert outbox.append(batch, TOPIC) == 5
    assert [e["seq"] for e in batch] == [1, 2, 3, 4, 5]
    stored = outbox.pending()
    assert [s.seq for s in stored] == [1, 2, 3, 4, 5]
    assert outbox.remove([stored[0].id, stored[1].id]) and outbox.depth == 3
    outbox.close()

    reopened = Outbox(path, max_bytes=10**6, stream="L1/cam1")
    assert reopened.depth == 3 and reopened.last_seq == 5
    assert [s.seq for s in reopened.pending()] == [3, 4, 5]
    assert [s.seq for s in reopened.pending(after_id=stored[3].id)] == [5]
    more = events(2)
    reopened.append(more, TOPIC)
    assert [e["seq"] for e in more] == [6, 7]
    assert b'"seq":6' in reopened.pending()[-2].payload
    reopened.close()


def test_seq_is_per_camera_stream(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite", max_bytes=10**6, stream="L1/cam1")
    outbox.append(events(3), TOPIC)
    outbox.close()
    other = Outbox(tmp_path / "o.sqlite", max_bytes=10**6, stream="L1/cam2")
    batch = events(1)
    other.append(batch, TOPIC)
    assert batch[0]["seq"] == 1
    other.close()


def test_over_the_size_bound_the_oldest_are_dropped_and_counted(tmp_path, caplog):
    outbox = Outbox(tmp_path / "o.sqlite", max_bytes=2000, stream="s")
    for _ in range(6):
        outbox.append(events(2, size=200), TOPIC)  # ~250 bytes each
    seqs = [s.seq for s in outbox.pending(limit=1000)]
    assert outbox.dropped > 0 and outbox.dropped + len(seqs) == 12
    assert seqs == list(range(13 - len(seqs), 13))  # the newest are kept, in order
    assert sum(len(s.payload) for s in outbox.pending(limit=1000)) <= 2000
    assert "dropped the" in caplog.text
    outbox.close()


def test_a_full_database_is_logged_and_counted_not_raised(tmp_path, caplog):
    # the hard file cap raises SQLITE_FULL, exactly what a full disk raises
    outbox = Outbox(tmp_path / "o.sqlite", max_bytes=10**9, stream="s", hard_limit_bytes=64 * 1024)
    stored = sum(outbox.append(events(10, size=2000), TOPIC) for _ in range(20))
    assert outbox.errors > 0 and stored < 200
    assert "database or disk is full" in caplog.text
    assert outbox.depth == len(outbox.pending(limit=1000)) == stored
    # acknowledged events make room again
    outbox.remove([s.id for s in outbox.pending(limit=1000)])
    batch = events(1)
    assert outbox.append(batch, TOPIC) == 1
    assert batch[0]["seq"] == 201  # lost events still used their seq: subscribers see the gap
    outbox.close()


def test_a_second_process_cannot_use_the_same_outbox(tmp_path):
    first = Outbox(tmp_path / "o.sqlite", max_bytes=10**6, stream="s")
    with pytest.raises(ConfigError, match="outbox.path: .*in use by another edge process"):
        Outbox(tmp_path / "o.sqlite", max_bytes=10**6, stream="s")
    first.close()
    Outbox(tmp_path / "o.sqlite", max_bytes=10**6, stream="s").close()


def test_the_database_is_in_wal_mode(tmp_path):
    Outbox(tmp_path / "o.sqlite", max_bytes=10**6, stream="s").close()
    db = sqlite3.connect(tmp_path / "o.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_the_write_ahead_log_stays_near_its_limit_under_steady_traffic(tmp_path):
    """10 MiB of events through the outbox: the -wal file beside it stays about 1 MiB."""
    path = tmp_path / "o.sqlite"
    outbox = Outbox(path, max_bytes=10**8, stream="s")
    wal = path.with_name(path.name + "-wal")
    largest = 0
    for _ in range(500):
        outbox.append(events(10, size=2000), TOPIC)
        outbox.remove([s.id for s in outbox.pending(limit=1000)])
        largest = max(largest, wal.stat().st_size)
    outbox.close()
    one_batch = 64 * 1024  # a checkpoint can only run after the transaction that crossed it
    assert 0 < largest <= WAL_LIMIT_BYTES + one_batch, largest
