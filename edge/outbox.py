"""Store-and-forward outbox: events wait in SQLite (WAL) until the broker acknowledges them.

- `append` stores a batch of events in one transaction and gives each the next `seq` of this
  camera; the counter lives in the same database, so it survives restarts and kill -9. Appends
  are synced to disk (synchronous=FULL: a power cut must not make `seq` go back); removals are
  not (synchronous=NORMAL: losing one only means sending that event again).
- `pending(after_id)` returns stored events in order; `remove(ids)` deletes acknowledged ones.
- The payload bytes kept are bounded by `max_bytes`: beyond, the oldest events are dropped,
  counted and warned about. The file itself is capped (SQLite max_page_count), so a runaway
  database hits the same "full" path as a full disk: logged and counted, never a crash.

Only one thread may use an Outbox (the publisher); `depth` and `counters` are safe to read from
any thread. A lock file keeps a second daemon off the same outbox.
"""

from __future__ import annotations

import fcntl
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ConfigError
from edge.schemas import encode_payload

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_HARD_LIMIT_SLACK = 16 << 20
WAL_LIMIT_BYTES = 1 << 20
_DELETE_CHUNK = 500  # ids per DELETE statement, well under SQLite's bound-parameter limit


@dataclass(frozen=True)
class StoredEvent:
    id: int
    seq: int
    event_id: str
    topic: str
    payload: bytes


class Outbox:
    def __init__(
        self, path: Path, max_bytes: int, stream: str, hard_limit_bytes: int | None = None
    ) -> None:
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self._seq_key = f"seq:{stream}"
        self._lock_file = _take_lock(self.path)
        try:
            self._db = _connect(self.path)
            self._db.executescript(_SCHEMA)
            limit = hard_limit_bytes if hard_limit_bytes else 2 * self.max_bytes + _HARD_LIMIT_SLACK
            page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
            self._db.execute(f"PRAGMA max_page_count = {max(limit // page_size, 16)}")
            self._seq = self._read_meta(self._seq_key)
            self._depth, self._bytes = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM events"
            ).fetchone()
        except sqlite3.Error as exc:
            self._lock_file.close()
            raise ConfigError(f"outbox.path: {self.path}: cannot open the outbox: {exc}") from None
        self.dropped = 0
        self.errors = 0
        self._last_error_log = 0.0
        if self._depth:
            log.info("outbox %s holds %d unsent events; they go first", self.path, self._depth)

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def counters(self) -> dict[str, int]:
        return {"depth": self._depth, "dropped": self.dropped, "errors": self.errors}

    def append(self, events: list[dict], topic: str) -> int:
        """Store events (seq is set on each dict); returns how many were stored."""
        if not events:
            return 0
        rows = []
        for event in events:
            payload = self._encoded(event)
            if payload is None:
                continue
            self._seq += 1  # advanced even if storing fails, so subscribers see the gap
            event["seq"] = self._seq
            payload = encode_payload(event).encode()
            rows.append((self._seq, event["event_id"], topic, payload, time.time()))
        if not rows:
            return 0
        try:
            self._db.execute("PRAGMA synchronous = FULL")
            with self._db:
                self._db.executemany(
                    "INSERT INTO events (seq, event_id, topic, payload, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                self._write_meta(self._seq_key, self._seq)
                added = sum(len(r[3]) for r in rows)
                dropped = self._trim(self._bytes + added)
        except sqlite3.Error as exc:
            self._failed(f"{len(events)} events lost", exc)
            return 0
        self._depth += len(rows) - dropped[0]
        self._bytes += added - dropped[1]
        if dropped[0]:
            self.dropped += dropped[0]
            log.warning(
                "outbox over %d bytes: dropped the %d oldest unsent events (%d in all)",
                self.max_bytes, dropped[0], self.dropped,
            )
        return len(rows)

    def pending(self, after_id: int = 0, limit: int = 100) -> list[StoredEvent]:
        """Stored events with id > after_id, oldest first."""
        try:
            rows = self._db.execute(
                "SELECT id, seq, event_id, topic, payload FROM events WHERE id > ? "
                "ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        except sqlite3.Error as exc:
            self._failed("cannot read pending events", exc)
            return []
        return [StoredEvent(*row) for row in rows]

    def remove(self, ids: list[int]) -> bool:
        """Delete acknowledged events; False if the database refused (they stay, sent again)."""
        if not ids:
            return True
        try:
            self._db.execute("PRAGMA synchronous = NORMAL")
            with self._db:
                sizes = [
                    row[0]
                    for start in range(0, len(ids), _DELETE_CHUNK)
                    for row in self._delete(ids[start : start + _DELETE_CHUNK])
                ]
        except sqlite3.Error as exc:
            self._failed(f"cannot remove {len(ids)} acknowledged events", exc)
            return False
        self._depth -= len(sizes)
        self._bytes -= sum(sizes)
        return True

    def _delete(self, ids: list[int]) -> list[tuple[int]]:
        marks = ",".join("?" * len(ids))
        return self._db.execute(
            f"DELETE FROM events WHERE id IN ({marks}) RETURNING LENGTH(payload)", ids
        ).fetchall()

    def close(self) -> None:
        try:
            self._db.close()
        finally:
            self._lock_file.close()

    def _trim(self, total: int) -> tuple[int, int]:
        """Delete the oldest events until the payload bytes fit; returns (count, bytes)."""
        if total <= self.max_bytes:
            return 0, 0
        doomed, freed, after = [], 0, 0
        while total - freed > self.max_bytes:
            rows = self._db.execute(
                "SELECT id, LENGTH(payload) FROM events WHERE id > ? ORDER BY id LIMIT 256",
                (after,),
            ).fetchall()
            if not rows:
                break
            for row_id, size in rows:
                if total - freed <= self.max_bytes:
                    break
                doomed.append((row_id,))
                freed += size
            after = rows[-1][0]
        self._db.executemany("DELETE FROM events WHERE id = ?", doomed)
        return len(doomed), freed

    def _read_meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _write_meta(self, key: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _encoded(self, event: dict) -> bytes | None:
        """Refuse an event that is not strict JSON (NaN/Infinity) before it takes a seq."""
        try:
            return encode_payload(event).encode()
        except (TypeError, ValueError) as exc:
            self.errors += 1
            log.error("event %s not stored: not valid JSON (%s)", event.get("event_id"), exc)
            return None

    def _failed(self, what: str, exc: sqlite3.Error) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._last_error_log >= 10.0:  # a full disk would otherwise flood the journal
            self._last_error_log = now
            log.error("outbox %s: %s: %s (%d errors so far)", self.path, what, exc, self.errors)


def _connect(path: Path) -> sqlite3.Connection:
    # `with db:` wraps a batch in one transaction (committed, or rolled back on an error)
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    # checkpoint every ~1 MiB and cut the log back to that size, so the WAL beside the capped
    # database stays small (SQLite's default lets it reach 4 MiB and never shrink)
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.execute(f"PRAGMA wal_autocheckpoint = {max(WAL_LIMIT_BYTES // page_size, 16)}")
    db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
    return db


def _take_lock(path: Path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_file = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"outbox.path: {path}: {exc.strerror}") from None
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock_file.close()
        raise ConfigError(f"outbox.path: {path} is in use by another edge process") from None
    return lock_file
