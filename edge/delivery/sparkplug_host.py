"""The Primary Host Application's STATE, and the DDATA held while it is offline (Sparkplug 3.0).

A host publishes, retained with QoS 1, `spBv1.0/STATE/HOST_ID` = `{"online": bool, "timestamp":
ms}` (online when it connects, offline as its will and when it stops). An edge node configured
with that host_id publishes its births only after an online=true, and a STATE older than the
newest one seen (a will overtaken by the next birth) is ignored.

While the host is offline (or the broker is away) the edge node's DDATA is held here, oldest
first and bounded: past `limit`, the oldest is dropped and counted. After the next birth each held
message goes out with its metrics flagged `is_historical`, in the order they were taken.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque

log = logging.getLogger(__name__)


class PrimaryHost:
    def __init__(self, namespace: str, host_id: str) -> None:
        self.host_id = host_id
        self.topic = f"{namespace}/STATE/{host_id}"
        self._newest_ms = -1

    def update(self, payload: bytes) -> bool | None:
        """The host's new state from a STATE payload; None when stale or malformed (ignored)."""
        try:
            state = json.loads(payload)
            online, timestamp = state["online"], state["timestamp"]
            if not isinstance(online, bool) or isinstance(timestamp, bool) \
                    or not isinstance(timestamp, int):
                raise TypeError("online must be a boolean and timestamp an integer (ms)")
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            log.warning("Sparkplug: malformed STATE on %s ignored (%s): %r", self.topic, exc,
                        payload[:200])
            return None
        if timestamp < self._newest_ms:
            log.info("Sparkplug: stale STATE on %s ignored (timestamp %d < %d)", self.topic,
                     timestamp, self._newest_ms)
            return None
        self._newest_ms = timestamp
        return online


class HeldData:
    """DDATA payloads (without seq) waiting for the primary host; shared by two threads."""

    def __init__(self, limit: int) -> None:
        self._payloads: deque = deque()
        self._limit = limit
        self._lock = threading.Lock()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._payloads)

    def add(self, payload) -> None:
        with self._lock:
            self._payloads.append(payload)
            while len(self._payloads) > self._limit:
                self._payloads.popleft()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning("Sparkplug: more than %d DDATA held for the primary host: "
                                "dropped the oldest (%d so far)", self._limit, self.dropped)

    def take_all(self) -> list:
        with self._lock:
            payloads = list(self._payloads)
            self._payloads.clear()
        return payloads
