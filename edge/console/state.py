"""What the console knows: the line's recent events, coil reports, stats and status per camera.

Filled by the MQTT thread, read by the web handlers; everything is bounded (`max_events`,
`max_coils`) and guarded by one lock. `version` grows with every change; the Server-Sent
Events stream sends a snapshot whenever it moved.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass


@dataclass(frozen=True)
class DefectEntry:
    """One defect of one event, as the gallery lists it."""

    event_id: str
    defect_id: int
    camera: str
    coil_id: str | None
    class_name: str
    score: float
    image: str | None


class ConsoleState:
    def __init__(self, max_events: int, max_coils: int) -> None:
        self._lock = threading.Lock()
        self.version = 0
        self.broker = "connecting"
        self.broker_since = time.time()
        self.events: OrderedDict[str, dict] = OrderedDict()
        self.coils: OrderedDict[tuple[str, str], dict] = OrderedDict()
        self.stats: dict[str, dict] = {}
        self.status: dict[str, dict] = {}
        self.received: dict[str, int] = {}
        self._max_events = max_events
        self._max_coils = max_coils
        self.dropped_events = 0
        self._latency_ms: deque[float] = deque(maxlen=512)
        self._entries: tuple[int, list[DefectEntry]] = (-1, [])

    def set_broker(self, state: str) -> None:
        with self._lock:
            if state != self.broker:
                self.broker, self.broker_since = state, time.time()
                self._bump()

    def add_event(self, event: dict, latency_ms: float | None) -> None:
        with self._lock:
            if event["event_id"] in self.events:
                return  # a redelivery
            self.events[event["event_id"]] = event
            while len(self.events) > self._max_events:
                self.events.popitem(last=False)
                self.dropped_events += 1
            if latency_ms is not None:
                self._latency_ms.append(latency_ms)
            self._count("defects")
            self._bump()

    def add_coil_report(self, report: dict) -> None:
        with self._lock:
            self.coils[(report["coil_id"], report["camera"])] = report
            while len(self.coils) > self._max_coils:
                self.coils.popitem(last=False)
            self._count("coils")
            self._bump()

    def set_stats(self, camera: str, stats: dict) -> None:
        with self._lock:
            self.stats[camera] = stats
            self._count("stats")
            self._bump()

    def set_status(self, camera: str, status: dict) -> None:
        with self._lock:
            self.status[camera] = status
            self._bump()

    def _count(self, kind: str) -> None:
        self.received[kind] = self.received.get(kind, 0) + 1

    def _bump(self) -> None:
        self.version += 1

    # ---- read side (copies, so that handlers never hold the lock while rendering) ----

    def cameras(self) -> list[str]:
        with self._lock:
            return sorted(set(self.stats) | set(self.status))

    def event(self, event_id: str) -> dict | None:
        with self._lock:
            return self.events.get(event_id)

    def recent_events(self, limit: int) -> list[dict]:
        with self._lock:
            return list(self.events.values())[-limit:][::-1]

    def defect_entries(self) -> list[DefectEntry]:
        """Every defect in memory, newest first (rebuilt only after a change: 10,000 events
        take ~30 ms to list, a gallery page from the cached list ~3 ms)."""
        with self._lock:
            version, entries = self._entries
            if version == self.version:
                return entries
            version, events = self.version, list(self.events.values())
        entries = [
            DefectEntry(e["event_id"], d.get("defect_id", i), e["camera"], e.get("coil_id"),
                        d["class_name"], d["score"], d.get("image"))
            for e in reversed(events) for i, d in enumerate(e["defects"])
        ]
        with self._lock:
            self._entries = (version, entries)
        return entries

    def coil_events(self, coil_id: str) -> list[dict]:
        with self._lock:
            return [e for e in self.events.values() if e.get("coil_id") == coil_id]

    def coil_reports(self) -> list[dict]:
        with self._lock:
            return list(self.coils.values())[::-1]

    def reports_of(self, coil_id: str) -> list[dict]:
        with self._lock:
            return [r for (c, _), r in self.coils.items() if c == coil_id]

    def coil_ids(self) -> list[str]:
        entries = self.defect_entries()
        with self._lock:
            ids = {c for c, _ in self.coils if c}  # a report of frames before tracking: None
            ids |= {s["coil_id"] for s in self.stats.values() if s.get("coil_id")}
        ids |= {e.coil_id for e in entries if e.coil_id}
        return sorted(ids)

    def snapshot(self) -> dict:
        """The live view's data: one JSON object (sent by SSE and /api/state)."""
        with self._lock:
            latency = sorted(self._latency_ms)
            return {
                "version": self.version,
                "broker": self.broker,
                "broker_since": self.broker_since,
                "received": dict(self.received),
                "events_kept": len(self.events),
                "events_dropped": self.dropped_events,
                "latency_ms_p50": latency[len(latency) // 2] if latency else None,
                "cameras": {
                    cam: {"status": self.status.get(cam, {}), "stats": self.stats.get(cam, {})}
                    for cam in sorted(set(self.stats) | set(self.status))
                },
            }
