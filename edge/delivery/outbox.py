"""Store-and-forward outbox: events wait in SQLite (WAL) until the broker acknowledges them.

- `append` stores a batch of events in one transaction and gives each the next `seq` of this
  camera (coil reports have a counter of their own); the counters live in the same database, so
  they survive restarts and kill -9. A database has a `stream` UUID, created with it: a new
  database starts a new stream, so `(stream, seq)` never repeats. The open coil's state is kept
  in the same database and written in the same transactions as the payloads. Appends
  are synced to disk (synchronous=FULL: a power cut must not make `seq` go back); removals are
  not (synchronous=NORMAL: losing one only means sending that event again).
- `pending(after_id)` returns stored events in order; `remove(ids)` deletes acknowledged ones.
- The payload bytes kept are bounded by `max_bytes`: beyond, the oldest events are dropped,
  counted and warned about. The file itself is capped (SQLite max_page_count), so a runaway
  database hits the same "full" path as a full disk: logged and counted, never a crash.

Only one thread may use an Outbox (the publisher); `depth` and `counters` are safe to read from
any thread. A lock file and an flock on the database file itself (edge.delivery.dbfile) keep a
second daemon off the same outbox; a database deleted or replaced under the daemon is re-created
from the open one, one truncated or found damaged while running is set aside and re-created from
what can still be read (`check_file`, `_salvage`); a lock held by another process delays storing
(events wait in memory), never loses. docs/mqtt.md#delivery-guarantees-store-and-forward has
the design.

`oldest_age_s` is safe to read from any thread too: the owning thread reads the oldest stored
event's time whenever the stored events change and keeps it in a plain attribute.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from edge.delivery.dbfile import DatabaseFile
from edge.errors import ConfigError
from edge.observe.ratelimit import RateLimitedLog
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
CREATE TABLE IF NOT EXISTS open_coil (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL);
"""
_HARD_LIMIT_SLACK = 16 << 20
WAL_LIMIT_BYTES = 1 << 20
_HOLD_MAX = 10_000  # events held in memory while the database is locked, at most
_BUSY_TIMEOUT_S = 0.5  # wait this long for a lock, then hold the events and try next turn
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
        self._seq_prefix = f"seq:{stream}"
        self._hard_limit = (hard_limit_bytes if hard_limit_bytes
                            else 2 * self.max_bytes + _HARD_LIMIT_SLACK)
        self._lock_file = _take_lock(self.path)
        self._file: DatabaseFile | None = None
        try:
            try:
                self._open()
            except sqlite3.DatabaseError as exc:
                if not _is_damaged(exc):
                    raise
                self._set_damaged_aside(exc)
                self._open()
        except (sqlite3.Error, ConfigError) as exc:
            if self._file is not None:
                self._file.close()
            self._lock_file.close()
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"outbox.path: {self.path}: cannot open the outbox: {exc}") from None
        self.replaced = 0  # times the database file was deleted or replaced under the daemon
        self.dropped = 0
        self.errors = 0
        self.busy = 0  # appends a lock held by another process deferred (nothing lost)
        self._held: list[tuple[dict, str, str]] = []  # (event, topic, counter)
        self._held_state: dict | None | bool = False  # a coil state not yet stored
        self._unstored: dict[str, int] = {}  # seqs of lost events per counter, skipped next
        self._salvage_pending: tuple[str, Path] | None = None  # (why, aside) of a failed salvage
        self._limited = RateLimitedLog(log)
        self._last_error_log = 0.0
        if self._depth:
            log.info("outbox %s holds %d unsent events; they go first", self.path, self._depth)

    def _open(self) -> None:
        self._file = DatabaseFile.lock(self.path)
        self._db = None
        self.oldest_created: float | None = None  # `created` of the oldest stored event
        try:
            self._db = self._open_db()
            self.stream = self._stream_id()
            self._seqs = {c: self._read_meta(self._seq_key(c)) for c in ("", "coils")}
            self.saved_coil = self._read_coil()
            self._coil_state = self.saved_coil  # the last state stored, for a salvage
            self._depth, self._bytes = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM events"
            ).fetchone()
            self._refresh_oldest()
        except BaseException:
            if self._db is not None:
                self._db.close()
            self._file.close()
            self._file = None
            raise

    def _set_damaged_aside(self, exc: sqlite3.Error) -> None:
        """A damaged database (truncated, overwritten) would keep the service down at every
        start: it is kept beside as evidence and a new one begins, with a new seq counter."""
        aside = _move_aside(self.path, "damaged")
        log.error(
            "outbox %s is damaged (%s): moved to %s and starting a new outbox; its unsent "
            "events are lost unless recovered from that file, and seq starts again at 1",
            self.path, exc, aside,
        )

    def _open_db(self, wal: bool = True) -> sqlite3.Connection:
        db = _connect(self.path, wal)
        db.executescript(_SCHEMA)
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {max(self._hard_limit // page_size, 16)}")
        return db

    @property
    def depth(self) -> int:
        """Unsent events: stored, or held in memory while the database is locked."""
        return self._depth + len(self._held)

    @property
    def oldest_age_s(self) -> float:
        """Seconds the oldest stored unsent event has waited (0 when none is stored)."""
        oldest = self.oldest_created
        return max(time.time() - oldest, 0.0) if oldest is not None else 0.0

    def _refresh_oldest(self) -> None:
        """Called by the owning thread after the stored events changed (by primary key: cheap)."""
        try:
            row = self._db.execute("SELECT created FROM events ORDER BY id LIMIT 1").fetchone()
        except sqlite3.Error as exc:
            self._failed("cannot read the oldest event's time", exc)
            return
        self.oldest_created = float(row[0]) if row else None

    @property
    def last_seq(self) -> int:
        """The last seq given to a defect event."""
        return self._seqs[""]

    def _seq_key(self, counter: str) -> str:
        return f"{self._seq_prefix}:{counter}" if counter else self._seq_prefix

    @property
    def counters(self) -> dict[str, int]:
        return {"depth": self.depth, "dropped": self.dropped, "errors": self.errors,
                "replaced": self.replaced}

    def append(self, events: list[dict], topic: str, counter: str = "",
               coil_state: dict | None | bool = False) -> int:
        """Store events (seq, and stream where the event has that key, are set on each dict)
        and, in the same transaction, the open coil's state (None clears it, False leaves it);
        returns how many events were stored. Each `counter` ("" for defect events, "coils" for
        coil reports) numbers its own payloads.

        Events a busy database refused (another process holding a lock) are held in memory and
        stored first on the next call, with the next seqs; only beyond `_HOLD_MAX` held events,
        or when storing fails otherwise (a full disk), are events lost: counted, logged, and
        their seqs skipped so subscribers see the gap.
        """
        self.check_file()
        batch = self._held + [(e, topic, counter) for e in events if self._encoded(e) is not None]
        state = coil_state if coil_state is not False else self._held_state
        self._held, self._held_state = [], False
        if not batch and state is False:
            return 0
        try:
            dropped, added = self._salvaging(lambda: self._store(batch, state))
        except sqlite3.Error as exc:
            if _is_busy(exc):
                self._hold(batch, state, exc)
            else:
                for _, _, lost_counter in batch:
                    self._unstored[lost_counter] = self._unstored.get(lost_counter, 0) + 1
                self._failed(f"{len(batch)} events lost", exc)
            return 0
        self._depth += len(batch) - dropped[0]
        self._bytes += added - dropped[1]
        if self.oldest_created is None or dropped[0]:
            self._refresh_oldest()
        if dropped[0]:
            self.dropped += dropped[0]
            self._limited.warning(  # once per 10 s: at the cap, every append drops some
                "full", "outbox over %d bytes: dropped the %d oldest unsent events (%d in all)",
                self.max_bytes, dropped[0], self.dropped,
            )
        return len(batch)

    def _store(self, batch: list[tuple[dict, str, str]],
               coil_state: dict | None | bool) -> tuple[tuple[int, int], int]:
        """One write transaction; seqs are read from the database under its write lock, so two
        writers (which the locks should prevent) still could not hand out one seq twice."""
        db = self._db
        db.execute("PRAGMA synchronous = FULL")
        db.execute("BEGIN IMMEDIATE")
        try:
            seqs: dict[str, int] = {}
            rows = []
            for event, topic, counter in batch:
                if counter not in seqs:
                    seqs[counter] = (self._read_meta(self._seq_key(counter))
                                     + self._unstored.get(counter, 0))
                seqs[counter] += 1
                event["seq"] = seqs[counter]
                if "stream" in event:
                    event["stream"] = self.stream
                rows.append((seqs[counter], event.get("event_id") or event["report_id"], topic,
                             encode_payload(event).encode(), time.time()))
            db.executemany(
                "INSERT INTO events (seq, event_id, topic, payload, created) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            for counter, seq in seqs.items():
                self._write_meta(self._seq_key(counter), seq)
            if coil_state is not False:
                self._write_coil(coil_state)
            added = sum(len(r[3]) for r in rows)
            dropped = self._trim(self._bytes + added)
            db.commit()
        except BaseException:
            db.rollback()
            raise
        for counter, seq in seqs.items():
            self._seqs[counter] = seq
            self._unstored.pop(counter, None)
        if coil_state is not False:
            self._coil_state = coil_state
        return dropped, added

    def _hold(self, batch: list[tuple[dict, str, str]], state: dict | None | bool,
              exc: sqlite3.Error) -> None:
        lost = max(len(batch) - _HOLD_MAX, 0)
        self._held, self._held_state = batch[lost:], state
        if lost:
            for _, _, counter in batch[:lost]:
                self._unstored[counter] = self._unstored.get(counter, 0) + 1
            self._failed(f"{lost} events lost: {len(self._held)} already wait in memory", exc)
        self.busy += 1
        self._limited.warning(
            "busy", "outbox %s is locked by another process (%s); %d events wait in memory and "
            "are stored when it is free", self.path, exc, len(self._held),
        )

    def _stream_id(self) -> str:
        """This database's stream UUID, created with it: (stream, seq) never repeats."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'stream'").fetchone()
        if row:
            return str(row[0])
        stream = _new_stream()
        with self._db:
            self._db.execute("INSERT INTO meta (key, value) VALUES ('stream', ?)", (stream,))
        return stream

    def _read_coil(self) -> dict | None:
        row = self._db.execute("SELECT state FROM open_coil WHERE id = 1").fetchone()
        return json.loads(row[0]) if row else None

    def _write_coil(self, state: dict | None) -> None:
        if state is None:
            self._db.execute("DELETE FROM open_coil")
        else:
            self._db.execute(
                "INSERT INTO open_coil (id, state) VALUES (1, ?) "
                "ON CONFLICT(id) DO UPDATE SET state = excluded.state",
                (encode_payload(state),),
            )

    def pending(self, after_id: int = 0, limit: int = 100) -> list[StoredEvent]:
        """Stored events with id > after_id, oldest first."""
        self.check_file()
        try:
            rows = self._salvaging(lambda: self._db.execute(
                "SELECT id, seq, event_id, topic, payload FROM events WHERE id > ? "
                "ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall())
        except sqlite3.Error as exc:
            self._failed("cannot read pending events", exc)
            return []
        return [StoredEvent(*row) for row in rows]

    def remove(self, ids: list[int]) -> bool:
        """Delete acknowledged events; False if the database refused (they stay, sent again)."""
        if not ids:
            return True
        try:
            sizes = self._salvaging(lambda: self._remove(ids))
        except sqlite3.Error as exc:
            self._failed(f"cannot remove {len(ids)} acknowledged events", exc)
            return False
        self._depth -= len(sizes)
        self._bytes -= sum(sizes)
        self._refresh_oldest()
        return True

    def _remove(self, ids: list[int]) -> list[int]:
        self._db.execute("PRAGMA synchronous = NORMAL")
        with self._db:
            return [
                row[0]
                for start in range(0, len(ids), _DELETE_CHUNK)
                for row in self._delete(ids[start : start + _DELETE_CHUNK])
            ]

    def _delete(self, ids: list[int]) -> list[tuple[int]]:
        marks = ",".join("?" * len(ids))
        return self._db.execute(
            f"DELETE FROM events WHERE id IN ({marks}) RETURNING LENGTH(payload)", ids
        ).fetchall()

    def close(self) -> None:
        try:
            self.check_file()  # unsent events of a deleted file would go with its inode
            self._db.close()
        finally:
            self._file.close()
            self._lock_file.close()

    # -- the database file's identity (edge.delivery.dbfile) -----------------------------------

    def check_file(self) -> None:
        """If the database file was deleted or replaced, re-create it with what the open one
        holds: every unsent event with its id and seq, the meta rows (seq counters, stream) and
        the open coil's state, so nothing is lost and seq goes on. If the file got shorter (cut by
        someone else), salvage it (`_salvage`); a salvage that failed is tried again here, each
        turn, until it succeeds. Costs three stat calls."""
        if self._salvage_pending is not None:
            self._salvage(self._salvage_pending[0])
            return
        why = self._file.replaced()
        if why is not None:
            try:
                self._recreate(why)
            except (OSError, sqlite3.Error, ConfigError) as exc:
                self.errors += 1
                self._limited.error(
                    "identity", "outbox %s %s and cannot be re-created (%s); the %d unsent "
                    "events stay in the open (deleted) database and are still sent", self.path,
                    why, exc, self._depth,
                )
        damage = self._file.truncated()
        if damage is not None:
            self._salvage(damage)

    def _salvaging(self, step):
        """`step()`; if SQLite finds the database damaged (SQLITE_CORRUPT, SQLITE_NOTADB),
        salvage it and run `step` once more on the new database."""
        try:
            return step()
        except sqlite3.DatabaseError as exc:
            if not _is_damaged(exc) or not self._salvage(f"is damaged ({exc})"):
                raise
        return step()

    def _salvage(self, why: str) -> bool:
        """The database is damaged under the daemon (truncated or overwritten in place): move it
        aside as evidence, begin a new database at `outbox.path` with a new stream epoch, the
        unsent events SQLite can still read (its page cache usually holds them all), the seq
        counters from memory (seq goes on) and the open coil's state. Events that cannot be read
        are lost: counted in `dropped`, their seqs stay used (a gap). False if no new database
        could be made: the daemon goes on with the damaged one (nothing is dropped) and tries
        again at the next `check_file`."""
        try:
            if self._salvage_pending is None:
                self._salvage_pending = (why, _move_aside(self.path, "damaged"))
            aside = self._salvage_pending[1]
            rows = _readable_rows(self._db)
            seqs = {c: seq + self._unstored.get(c, 0) for c, seq in self._seqs.items()}
            stream = _new_stream()
            meta = [(self._seq_key(c), seq) for c, seq in seqs.items()] + [("stream", stream)]
            coil = ([] if self._coil_state is None
                    else [(1, encode_payload(self._coil_state))])
            self._replace_db(rows, meta, coil)
        except (OSError, sqlite3.Error, ConfigError) as exc:
            self.errors += 1
            self._limited.error(
                "damaged", "outbox %s %s and no new database could be made (%s); the %d unsent "
                "events stay in the damaged one, tried again next turn", self.path, why, exc,
                self._depth,
            )
            return False
        self._salvage_pending = None
        lost = max(self._depth - len(rows), 0)
        self.stream = stream  # a new database, a new stream: (stream, seq) unique
        self._seqs, self._unstored = seqs, {}
        self._depth, self._bytes = len(rows), sum(len(row[4]) for row in rows)
        self.replaced += 1
        self.dropped += lost
        self._refresh_oldest()
        log.error(
            "outbox %s %s while the daemon ran: moved it to %s and began a new database "
            "(stream %s) with the %d unsent events still readable; %d could not be read and are "
            "lost; seq goes on from %d", self.path, why, aside, self.stream, len(rows), lost,
            self.last_seq,
        )
        return True

    def _recreate(self, why: str) -> None:
        aside = _move_aside(self.path, "foreign", ("",)) if self.path.exists() else None
        rows = self._db.execute(
            "SELECT id, seq, event_id, topic, payload, created FROM events ORDER BY id"
        ).fetchall()
        meta = self._db.execute("SELECT key, value FROM meta").fetchall()
        coil = self._db.execute("SELECT id, state FROM open_coil").fetchall()
        self._replace_db(rows, meta, coil)
        self.replaced += 1
        self._refresh_oldest()
        log.error(
            "outbox %s %s while the daemon ran: re-created it from the open database with its "
            "%d unsent events; seq goes on from %d%s", self.path, why, len(rows), self.last_seq,
            f" (the file found there was moved to {aside})" if aside else "",
        )

    def _replace_db(self, rows: list[tuple], meta: list[tuple], coil: list[tuple]) -> None:
        """Build a whole new database at `outbox.path` (events, meta and open-coil rows, one
        committed transaction) while the old connection stays open, and only then swap. Raises
        with the old database still in use and nothing at `outbox.path` if any step fails.

        The old connection's close deletes `<path>-wal` and `-shm` by name, so the new database
        is built in rollback-journal mode (it has neither) and turned to WAL after that close;
        its file is created (and flocked) before the old one closes: ours or nothing."""
        new_file = DatabaseFile.lock(self.path)
        db = None
        try:
            db = self._open_db(wal=False)
            with db:
                db.executemany(
                    "INSERT INTO events (id, seq, event_id, topic, payload, created) "
                    "VALUES (?, ?, ?, ?, ?, ?)", rows,
                )
                db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta)
                db.executemany("INSERT INTO open_coil (id, state) VALUES (?, ?)", coil)
        except BaseException:
            if db is not None:
                db.close()
            _discard(new_file)
            raise
        try:
            self._db.close()  # a recreated one's WAL is checkpointed into the deleted inode
        except sqlite3.Error:
            pass  # a damaged one's checkpoint may fail; everything is in the new database
        self._file.close()
        self._file, self._db = new_file, db
        try:
            db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error as exc:
            self._failed("the new database stays in rollback-journal mode", exc)

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


def _connect(path: Path, wal: bool = True) -> sqlite3.Connection:
    # `with db:` wraps a batch in one transaction (committed, or rolled back on an error)
    db = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, check_same_thread=False)
    if wal:
        db.execute("PRAGMA journal_mode = WAL")
    # checkpoint every ~1 MiB and cut the log back to that size, so the WAL beside the capped
    # database stays small (SQLite's default lets it reach 4 MiB and never shrink)
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.execute(f"PRAGMA wal_autocheckpoint = {max(WAL_LIMIT_BYTES // page_size, 16)}")
    db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
    return db


def _readable_rows(db: sqlite3.Connection) -> list[tuple]:
    """The intact stored events a damaged database still gives, in id order: from the start up
    to the first damaged page, then from the end back down to it."""
    query = "SELECT id, seq, event_id, topic, payload, created FROM events WHERE id > ? ORDER BY id"
    head, tail = [], []
    if not _read_until_damage(db.execute, query, 0, head):
        _read_until_damage(db.execute, query + " DESC", head[-1][0] if head else 0, tail)
    return [row for row in head + tail[::-1] if _intact(row)]


def _intact(row: tuple) -> bool:
    """SQLite has no page checksums: a row on a damaged page can read without an error and hold
    zeros. A payload that is its row's JSON (event id and seq) is kept."""
    try:
        body = json.loads(row[4])
    except (ValueError, UnicodeDecodeError):
        return False
    return (isinstance(body, dict) and body.get("seq") == row[1]
            and row[2] in (body.get("event_id"), body.get("report_id")))


def _read_until_damage(execute, query: str, after: int, rows: list[tuple]) -> bool:
    """Append the query's rows to `rows`; False if it stopped at an error."""
    try:
        for row in execute(query, (after,)):
            rows.append(row)
    except sqlite3.Error:
        return False
    return True


def _move_aside(path: Path, kind: str, suffixes: tuple[str, ...] = ("", "-wal", "-shm")) -> Path:
    """Rename the database (and its -wal/-shm) to PATH.KIND-TIMESTAMP[-N], never over a file.
    A foreign file moves alone: the -wal/-shm by its name are still the open database's."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(f"{path.name}.{kind}-{stamp}")
    number = 1
    while any(aside.with_name(aside.name + s).exists() for s in ("", "-wal", "-shm")):
        number += 1
        aside = path.with_name(f"{path.name}.{kind}-{stamp}-{number}")
    for suffix in suffixes:
        source = path.with_name(path.name + suffix)
        if source.exists():
            source.rename(aside.with_name(aside.name + suffix))
    return aside


def _discard(new_file: DatabaseFile) -> None:
    """Remove a new database that could not be completed (if the path still names it)."""
    try:
        info = os.stat(new_file.path)
        if (info.st_dev, info.st_ino) == new_file.identity:
            os.unlink(new_file.path)
        new_file.path.with_name(new_file.path.name + "-journal").unlink(missing_ok=True)
    except OSError:
        pass  # the next attempt finds it there and moves it aside
    finally:
        new_file.close()


def _new_stream() -> str:
    stream = uuid.uuid4().hex
    while stream.isdigit():  # meta.value has INTEGER affinity: keep the text a text
        stream = uuid.uuid4().hex
    return stream


def _is_damaged(exc: sqlite3.Error) -> bool:
    """SQLITE_CORRUPT or SQLITE_NOTADB: the file is not (or no longer) a whole database."""
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (sqlite3.SQLITE_CORRUPT,
                                                           sqlite3.SQLITE_NOTADB)


def _is_busy(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED (any extended code): another connection holds a lock."""
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (sqlite3.SQLITE_BUSY,
                                                           sqlite3.SQLITE_LOCKED)


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
