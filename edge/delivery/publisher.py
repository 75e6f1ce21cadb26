"""The publisher thread: the only user of the outbox.

Each turn it (1) stores the events the inference thread submitted, in one transaction, (2) deletes
the events the broker acknowledged, in one transaction, and (3) when MQTT is ready, hands the next
stored events to paho in id order, keeping at most `max_inflight` unacknowledged. After a restart
the cursor starts at 0, so events left in the outbox go out before new ones. `submit` never
blocks: inference does not wait on the disk or the network. An event the broker refuses (MQTT 5,
e.g. its ACL) stays in the outbox: the cursor goes back to it and sending pauses with the
reconnect backoff before it is offered again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from edge.backoff import Backoff
from edge.delivery.mqtt import MqttClient
from edge.delivery.outbox import Outbox

log = logging.getLogger(__name__)

_TURN_S = 0.005  # at most one commit per 5 ms: batches grow with the event rate
_IDLE_WAIT_S = 0.1


class Publisher:
    def __init__(
        self, outbox: Outbox, mqtt: MqttClient, topics: dict[str, str], max_inflight: int,
        queue_size: int,
    ) -> None:
        self.outbox = outbox
        self.mqtt = mqtt
        self.topics = dict(topics)  # payload kind ("defects", "coils") -> topic
        self.max_inflight = max_inflight
        self._queue: queue.SimpleQueue[tuple[str, dict | None]] = queue.SimpleQueue()
        self._queue_size = queue_size
        self._inflight: dict[int, int] = {}  # paho message id -> outbox row id
        self._cursor = 0  # highest outbox row id handed to paho
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_deadline: float | None = None
        self._thread: threading.Thread | None = None
        self.rejected = 0  # submitted while the queue to the outbox was full
        self.acked = 0  # defect events and coil reports
        self.reports_acked = 0
        self._report_rows: set[int] = set()
        self._unremoved: list[int] = []  # acknowledged, but the outbox refused to delete them
        self._was_ready = False
        self.refused = 0
        self._retry = Backoff(mqtt.config.reconnect.initial, mqtt.config.reconnect.max)
        self._paused_until = 0.0

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    @property
    def idle(self) -> bool:
        """Nothing waiting: every submitted event is stored and acknowledged (or dropped)."""
        return self._queue.empty() and self.outbox.depth == 0

    def submit(self, kind: str, payload: dict) -> bool:
        """Called by the inference thread; False (and counted) if the queue is full. Coil reports
        are never refused: one per coil, and the open coil's state depends on them."""
        if kind != "coils" and self._queue.qsize() >= self._queue_size:
            self.rejected += 1
            return False
        self._queue.put((kind, payload))
        self._wake.set()
        return True

    def save_state(self, state: dict | None) -> None:
        """The open coil's state (None: no coil open), kept in the outbox in order with events."""
        self._queue.put(("state", state))
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()

    def stop(self, flush_timeout: float) -> None:
        """Keep storing and sending for up to `flush_timeout` s until idle, then end the thread."""
        if self._thread is None:
            return
        self._flush_deadline = time.monotonic() + flush_timeout
        self._wake.set()
        self._thread.join(flush_timeout + 5.0)
        if self._thread.is_alive():
            log.error("publisher thread did not stop")
        elif not self.idle:
            log.warning("stopping with %d events left in the outbox; they go first on restart",
                        self.outbox.depth + self.queued)
        self._thread = None

    def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                self._turn()
            except Exception:  # a bug here must not silently end event delivery
                log.exception("publisher turn failed")
                time.sleep(1.0)
            if self._flush_deadline is not None and (
                self.idle or time.monotonic() >= self._flush_deadline
            ):
                return
            self._wake.wait(_IDLE_WAIT_S)
            self._wake.clear()
            time.sleep(max(0.0, started + _TURN_S - time.monotonic()))

    def _turn(self) -> None:
        self._store_submitted()
        self._remove_acknowledged()
        self._take_back_refused()
        ready = self.mqtt.ready.is_set()
        if ready and not self._was_ready and self.outbox.depth:
            log.info("broker ready: sending %d stored events first", self.outbox.depth)
        self._was_ready = ready
        if ready and time.monotonic() >= self._paused_until:
            self._send_next()

    def _store_submitted(self) -> None:
        """Store what was submitted, in order: a run of events together with the coil state that
        follows it in one transaction (so a restart never reuses a stored defect_id), each coil
        report with the removal of its coil's saved state."""
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        run: list[dict] = []
        for kind, payload in items:
            if kind == "defects":
                run.append(payload)
            elif kind == "state":
                self.outbox.append(run, self.topics["defects"], coil_state=payload)
                run = []
            else:
                self._store_run(run)
                run = []
                self.outbox.append([payload], self.topics["coils"], counter="coils",
                                   coil_state=None)
        self._store_run(run)

    def _store_run(self, events: list[dict]) -> None:
        if events:
            self.outbox.append(events, self.topics["defects"])

    def _remove_acknowledged(self) -> None:
        ids = [self._inflight.pop(mid) for mid in self.mqtt.take_acks() if mid in self._inflight]
        self.acked += len(ids)
        reports = self._report_rows.intersection(ids)
        self.reports_acked += len(reports)
        self._report_rows -= reports
        if ids:
            self._retry.reset()
        ids = self._unremoved + ids
        # a full disk refuses deletes too: retry them every turn, or they would stay (and count
        # in the outbox depth) until the next restart sends them again
        self._unremoved = ids if ids and not self.outbox.remove(ids) else []

    def _take_back_refused(self) -> None:
        rows = [self._inflight.pop(mid) for mid, _ in self.mqtt.take_refusals()
                if mid in self._inflight]
        if not rows:
            return
        self.refused += len(rows)
        self._cursor = min(self._cursor, min(rows) - 1)
        delay = self._retry.next_delay()
        self._paused_until = time.monotonic() + delay
        log.warning("%d events refused by the broker; kept in the outbox, offered again in %.1f s",
                    len(rows), delay)

    def _send_next(self) -> None:
        room = self.max_inflight - len(self._inflight)
        if room <= 0:
            return
        in_flight = set(self._inflight.values())
        for stored in self.outbox.pending(self._cursor, room):
            if stored.id in in_flight:  # sent before a refusal moved the cursor back
                self._cursor = stored.id
                continue
            mid = self.mqtt.publish_event(stored.topic, stored.payload)
            if mid is None:
                return
            self._inflight[mid] = stored.id
            self._cursor = stored.id
            if stored.topic == self.topics["coils"]:
                self._report_rows.add(stored.id)
