"""The outbox's identity: its own lock, a deleted or replaced file, seq under the write lock,
an external lock, the rate-limited full warning, `edge check`'s integrity check (real SQLite
files, real second connections)."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from types import SimpleNamespace

import pytest

from edge.commands.check import run as check_run
from edge.config import parse_config
from edge.delivery.outbox import Outbox
from edge.errors import ConfigError
from tests.fixtures.broker import wait_until
from tests.fixtures.edge_daemon import daemon_sections, frame_with_tiles, write_config, write_frames
from tests.fixtures.reliability import running_daemon
from tests.test_edge_outbox import TOPIC, events


def open_outbox(path, **options) -> Outbox:
    return Outbox(path, max_bytes=options.pop("max_bytes", 10**7), stream="L1/cam1", **options)


def test_deleting_the_lock_file_does_not_let_a_second_daemon_in(tmp_path):
    path = tmp_path / "outbox.sqlite"
    first = open_outbox(path)
    try:
        os.unlink(path.with_name(path.name + ".lock"))
        with pytest.raises(ConfigError, match="outbox.path: .* is in use by another edge process"):
            open_outbox(path)
    finally:
        first.close()


@pytest.mark.parametrize("how", ["delete", "replace"])
def test_a_deleted_or_replaced_database_is_recreated_without_losing_events(tmp_path, caplog, how):
    path = tmp_path / "outbox.sqlite"
    outbox = open_outbox(path)
    first = events(61)
    assert outbox.append(first, TOPIC) == 61
    outbox.remove([s.id for s in outbox.pending(limit=10)])  # 51 left
    ids_before = [s.id for s in outbox.pending(limit=100)]
    for suffix in ("", "-wal", "-shm", ".lock"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    if how == "replace":
        sqlite3.connect(path).execute("CREATE TABLE other (x)").connection.close()
    caplog.set_level(logging.ERROR, logger="edge.delivery.outbox")
    more = events(3)
    assert outbox.append(more, TOPIC) == 3
    assert [e["seq"] for e in more] == [62, 63, 64]
    assert outbox.replaced == 1 and outbox.counters["replaced"] == 1
    assert [s.id for s in outbox.pending(limit=100)][:51] == ids_before  # the publisher's ids
    assert "re-created it from the open database with its 51 unsent events" in caplog.text
    outbox.close()
    reopened = open_outbox(path)
    try:
        assert [s.seq for s in reopened.pending(limit=100)] == list(range(11, 65))
        assert reopened.last_seq == 64
    finally:
        reopened.close()
    if how == "replace":
        assert len(list(tmp_path.glob("outbox.sqlite.foreign-*"))) == 1


def test_a_file_deleted_after_the_last_event_is_saved_at_close(tmp_path):
    path = tmp_path / "outbox.sqlite"
    outbox = open_outbox(path)
    outbox.append(events(5), TOPIC)
    path.unlink()
    outbox.close()
    reopened = open_outbox(path)
    assert [s.seq for s in reopened.pending()] == [1, 2, 3, 4, 5]
    reopened.close()


def test_seq_is_read_from_the_database_inside_the_write_transaction(tmp_path):
    path = tmp_path / "outbox.sqlite"
    outbox = open_outbox(path)
    try:
        outbox.append(events(2), TOPIC)
        # another writer (which the locks now keep out) advanced the counter in the file
        other = sqlite3.connect(path)
        with other:
            other.execute("UPDATE meta SET value = 40 WHERE key = 'seq:L1/cam1'")
        other.close()
        batch = events(2)
        outbox.append(batch, TOPIC)
        assert [e["seq"] for e in batch] == [41, 42]  # not 3, 4: no seq handed out twice
    finally:
        outbox.close()


def test_an_external_lock_held_for_seconds_loses_no_event(tmp_path, caplog):
    path = tmp_path / "outbox.sqlite"
    outbox = open_outbox(path)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # e.g. a backup tool or `sqlite3` shell on the line PC
    caplog.set_level(logging.WARNING, logger="edge.delivery.outbox")
    release = threading.Timer(2.0, lambda: holder.execute("COMMIT"))
    try:
        release.start()
        sent, stored, started = [], 0, time.monotonic()
        while time.monotonic() - started < 3.0:
            batch = events(2)
            sent += batch
            stored += outbox.append(batch, TOPIC)
            time.sleep(0.05)
        assert outbox.busy > 0 and outbox.errors == 0
        stored += outbox.append([], TOPIC)
        assert stored == len(sent) and outbox.depth == len(sent)
        seqs = [s.seq for s in outbox.pending(limit=1000)]
        assert seqs == list(range(1, len(sent) + 1))
        assert [s.event_id for s in outbox.pending(limit=1000)] == [e["event_id"] for e in sent]
    finally:
        release.join()
        holder.close()
        outbox.close()
    warnings = [r for r in caplog.records if "is locked by another process" in r.getMessage()]
    assert 1 <= len(warnings) <= 2


def test_the_outbox_full_warning_is_rate_limited(tmp_path, caplog):
    outbox = open_outbox(tmp_path / "outbox.sqlite", max_bytes=2000)
    caplog.set_level(logging.WARNING, logger="edge.delivery.outbox")
    try:
        for _ in range(200):
            outbox.append(events(1, size=500), TOPIC)
        assert outbox.dropped >= 190
    finally:
        outbox.close()
    assert len([r for r in caplog.records if "dropped the" in r.getMessage()]) == 1


@pytest.mark.parametrize("damage", ["garbage", "truncated", "good"])
def test_edge_check_runs_an_integrity_check_on_the_outbox(tmp_path, capsys, damage):
    path = tmp_path / "state" / "outbox.sqlite"
    outbox = open_outbox(path)
    outbox.append(events(300, size=400), TOPIC)
    outbox.close()
    if damage == "garbage":
        path.write_bytes(b"not a database" * 100)
    elif damage == "truncated":
        with open(path, "r+b") as fh:
            fh.truncate(path.stat().st_size // 2)
    sections = daemon_sections(tmp_path, SimpleNamespace(host="127.0.0.1", port=1),
                               tmp_path / "none.onnx", tmp_path / "none")
    config = write_config(tmp_path / "edge.toml", sections)
    assert check_run(SimpleNamespace(config=config, config_only=False)) == 1  # no model
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    if damage == "good":
        assert "OK" in rows["outbox"] and "integrity ok, 300 unsent events" in rows["outbox"]
    else:
        assert "FAIL" in rows["outbox"] and f"outbox.path: {path}: " in rows["outbox"]
        assert ("not a database" in rows["outbox"] or "malformed" in rows["outbox"]
                or "damaged" in rows["outbox"]), rows["outbox"]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_outbox_at_start_is_kept_aside_and_a_new_one_begins(tmp_path, caplog, damage):
    path = tmp_path / "outbox.sqlite"
    outbox = open_outbox(path)
    outbox.append(events(300, size=400), TOPIC)
    outbox.close()
    if damage == "garbage":
        path.write_bytes(b"not a database" * 100)
    else:
        with open(path, "r+b") as fh:
            fh.truncate(path.stat().st_size // 2)
    kept = path.read_bytes()
    caplog.set_level(logging.ERROR, logger="edge.delivery.outbox")
    outbox = open_outbox(path)  # before: ConfigError, exit 2, and the service stayed down
    try:
        batch = events(1)
        assert outbox.append(batch, TOPIC) == 1 and batch[0]["seq"] == 1
    finally:
        outbox.close()
    (aside,) = tmp_path.glob("outbox.sqlite.damaged-*[0-9]")
    assert aside.read_bytes() == kept
    assert "is damaged" in caplog.text and "seq starts again at 1" in caplog.text


def read_all_pending(outbox: Outbox) -> list:
    stored, after = [], 0
    while batch := outbox.pending(after, 500):
        stored += batch
        after = batch[-1].id
    return stored


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_a_database_damaged_while_running_is_salvaged_and_seq_goes_on(tmp_path, caplog, damage):
    """Truncated: seen by the size check before the next store (the page cache still holds every
    event). Overwritten in place (same size) in an outbox larger than SQLite's page cache: seen
    when a read hits a damaged page; the events before and after it are kept."""
    path = tmp_path / "outbox.sqlite"
    outbox = open_outbox(path, max_bytes=10**8)
    # over 1 MiB, so the outbox's own checkpoints write them into the file
    count, size = (61, 20_000) if damage == "truncated" else (4000, 1000)
    outbox.append(events(count, size), TOPIC)
    outbox.remove([s.id for s in outbox.pending(limit=10)])
    before = [(s.id, s.seq, s.payload) for s in read_all_pending(outbox)]
    stream = outbox.stream
    outbox.pending(limit=1)  # the outbox sees the checkpointed size
    caplog.set_level(logging.ERROR, logger="edge.delivery.outbox")
    length = path.stat().st_size
    with open(path, "r+b") as fh:
        if damage == "truncated":
            fh.truncate(length // 2)
        else:
            fh.seek(length // 4)
            fh.write(bytes(length // 4))
    after = [(s.id, s.seq, s.payload) for s in read_all_pending(outbox)]
    more = events(3)
    assert outbox.append(more, TOPIC) == 3
    assert [e["seq"] for e in more] == [count + 1, count + 2, count + 3]
    assert outbox.replaced == 1 and outbox.stream != stream
    lost = len(before) - len(after)
    assert outbox.dropped == lost and set(after) <= set(before)
    if damage == "truncated":
        assert after == before and "was truncated from" in caplog.text
    else:  # the events before and after the damage, in order
        assert 0 < lost < len(before) and after == sorted(after)
        assert after[0] == before[0] and after[-1] == before[-1]
        assert "is damaged (database disk image is malformed)" in caplog.text
    assert f"with the {len(after)} unsent events still readable; {lost} could not" in caplog.text
    outbox.close()
    assert len(list(tmp_path.glob("outbox.sqlite.damaged-*[0-9]"))) == 1
    reopened = open_outbox(path)
    try:
        assert reopened.stream == outbox.stream and reopened.last_seq == count + 3
        assert [(s.id, s.seq, s.payload) for s in read_all_pending(reopened)][:-3] == after
    finally:
        reopened.close()


def test_the_daemon_alarms_and_announces_the_new_stream_of_a_truncated_outbox(
    tmp_path, mqtt_broker, mqtt_subscriber, mean_model
):
    frames = {f"{i:02d}.png": frame_with_tiles([255, 0]) for i in range(40)}  # one event each
    images = write_frames(tmp_path / "frames", frames)
    config = parse_config(daemon_sections(tmp_path, mqtt_broker, mean_model, images,
                                          camera={"rate": 20}))
    path = config.outbox.path
    with running_daemon(config, lossless=True) as daemon:
        first_stream = daemon.outbox.stream
        assert wait_until(lambda: daemon.stats.frames_processed >= 10, timeout=20)
        sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").connection.close()
        time.sleep(0.2)  # the publisher's next turns see the checkpointed size
        os.truncate(path, 0)
        assert wait_until(lambda: daemon.outbox.replaced == 1, timeout=10)
        assert "OUTBOX RE-CREATED 1, " in daemon.status_line()
        assert wait_until(lambda: daemon.pipeline.finished and daemon.all_acknowledged, 20)
        assert wait_until(lambda: any(s.get("stream") not in (None, first_stream)
                                      for s in mqtt_subscriber.payloads("/status")), timeout=5)
    assert daemon.outbox.stream != first_stream
    ids_by_seq: dict[int, set] = {}
    for event in mqtt_subscriber.payloads("/defects"):
        ids_by_seq.setdefault(event["seq"], set()).add(event["event_id"])
    assert all(len(ids) == 1 for ids in ids_by_seq.values())  # seq went on, never restarted
    # an event stored but not yet sent when the file was cut may be unreadable: counted
    missing = set(range(1, 41)) - set(ids_by_seq)
    assert max(ids_by_seq) == 40 and len(missing) == daemon.outbox.counters["dropped"]
    assert len(list(path.parent.glob("outbox.sqlite.damaged-*[0-9]"))) == 1


def test_a_salvage_that_cannot_build_the_new_database_loses_nothing_and_is_retried(
    tmp_path, caplog, monkeypatch
):
    path = tmp_path / "outbox.sqlite"
    outbox = open_outbox(path, max_bytes=10**8)
    outbox.append(events(61, 20_000), TOPIC)  # over 1 MiB: checkpointed into the file
    outbox.remove([s.id for s in outbox.pending(limit=10)])
    before = [(s.id, s.seq) for s in read_all_pending(outbox)]
    outbox.pending(limit=1)  # the outbox sees the checkpointed size
    real_open_db, failures = Outbox._open_db, []

    def open_db_failing_once(self, wal=True):
        if not wal and not failures:  # the new database of a salvage
            failures.append(1)
            raise sqlite3.OperationalError("database or disk is full")
        return real_open_db(self, wal)

    monkeypatch.setattr(Outbox, "_open_db", open_db_failing_once)
    caplog.set_level(logging.ERROR, logger="edge.delivery.outbox")
    os.truncate(path, path.stat().st_size // 2)
    assert outbox.append(events(3), TOPIC) == 3  # into the damaged database, still open
    assert failures and outbox.replaced == 0 and outbox.errors == 1 and outbox.depth == 54
    assert "no new database could be made (database or disk is full)" in caplog.text
    assert not path.exists()  # the half-built database was removed
    after = [(s.id, s.seq) for s in read_all_pending(outbox)]  # the next turn salvages
    assert outbox.replaced == 1 and outbox.dropped == 0 and outbox.depth == 54
    assert after[:51] == before and [seq for _, seq in after[51:]] == [62, 63, 64]
    outbox.close()
    reopened = open_outbox(path)
    try:
        assert [(s.id, s.seq) for s in read_all_pending(reopened)] == after
        assert reopened.last_seq == 64 and reopened.stream == outbox.stream
    finally:
        reopened.close()
