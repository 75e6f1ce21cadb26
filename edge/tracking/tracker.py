"""The tracking state shared by a tracking source (its own thread) and the grabber.

A source reports coil ids and speeds as they arrive; `Tracker` stamps each coil change with its
arrival time. The grabber asks, for every frame, for the changes that arrived before the frame's
acquisition timestamp: the new coil starts at the first frame acquired after the message.
Nothing here blocks for long: one lock around a few assignments.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass

from edge.observe.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

_MAX_COIL_ID = 256


@dataclass(frozen=True)
class CoilChange:
    arrival: float  # UTC seconds since the epoch
    coil_id: str
    length_m: float | None = None


def parse_coil_message(payload: bytes) -> tuple[str | None, float | None, float | None]:
    """(coil_id, speed_m_s, length_m) of an L2 message; ValueError naming what is wrong."""
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError(f"not a JSON object (got {type(body).__name__})")
    coil_id = body.get("coil_id")
    if coil_id is not None and not (isinstance(coil_id, str) and 0 < len(coil_id) <= _MAX_COIL_ID):
        raise ValueError(f"coil_id must be a string of 1 to {_MAX_COIL_ID} characters "
                         f"(got {coil_id!r:.80})")
    speed = _number(body, "speed_m_s")
    length = _number(body, "length_m")
    if coil_id is None and speed is None:
        raise ValueError("coil_id is missing (only a message with speed_m_s may leave it out)")
    return coil_id, speed, length


def _number(body: dict, key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"{key} must be a non-negative number (got {value!r:.80})")
    return float(value)


class Tracker:
    """Coil changes and speed from one source; `state` is shown in status and stats."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.state = "none" if source == "none" else "connecting"
        self.messages = 0
        self.malformed = 0
        self.speed_m_s: float | None = None
        self.last_coil_id: str | None = None
        self._changes: list[CoilChange] = []
        self._lock = threading.Lock()
        self._faults = RateLimitedLog(log)

    @property
    def counters(self) -> dict[str, int]:
        return {"messages": self.messages, "malformed": self.malformed}

    def report(self, coil_id: str | None, speed_m_s: float | None = None,
               length_m: float | None = None, arrival: float | None = None) -> None:
        """A source's reading: a coil id (a change when it differs from the last) and/or speed."""
        arrival = time.time() if arrival is None else arrival
        with self._lock:
            self.messages += 1
            if speed_m_s is not None:
                self.speed_m_s = speed_m_s
            if coil_id is not None and coil_id != self.last_coil_id:
                log.info("tracking: coil %s (was %s)", coil_id, self.last_coil_id)
                self.last_coil_id = coil_id
                self._changes.append(CoilChange(arrival, coil_id, length_m))

    def report_message(self, payload: bytes, origin: str) -> None:
        """A raw L2 message; a malformed one is logged (rate-limited) and counted, nothing else."""
        try:
            coil_id, speed, length = parse_coil_message(payload)
        except ValueError as exc:
            self.malformed += 1
            self._faults.warning("malformed", "tracking: malformed message on %s ignored: %s "
                                 "(%d so far)", origin, exc, self.malformed)
            return
        self.report(coil_id, speed, length)

    def changes_until(self, timestamp: float) -> list[CoilChange]:
        """Coil changes that arrived at or before `timestamp`, taken out in arrival order."""
        with self._lock:
            if not self._changes or self._changes[0].arrival > timestamp:
                return []
            taken = [c for c in self._changes if c.arrival <= timestamp]
            self._changes = self._changes[len(taken):]
        return taken
