"""Daemon counters and timings, and the periodic stats message built from them.

Each counter is written by one thread only (grabber, inference or publisher); readers take
snapshots, so plain integers are enough.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from datetime import UTC, datetime

import numpy as np

STATS_SCHEMA = "steel-inspect/stats/v1"
_TIMING_WINDOW = 2048  # per-frame timings kept for the percentiles


class Stats:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.frames_in = 0
        self.frames_processed = 0
        self.frames_failed = 0
        self.frames_paused = 0  # acquired while inspection was paused: not inspected
        self.model_faults = 0  # frames whose model outputs were invalid (also in frames_failed)
        self.model_faulted = False  # the last frame's outputs were invalid
        self.model_fault_reason: str | None = None  # why the last invalid outputs were invalid
        # time.time() the current fault state began: set at a fault when None, cleared by the
        # daemon when its status goes back to ok (faults between two ticks keep it)
        self.model_fault_since: float | None = None
        self.events = 0
        self.defects_by_class: Counter[str] = Counter()
        self.frames_by_class: Counter[str] = Counter()
        self.inference_ms: deque[float] = deque(maxlen=_TIMING_WINDOW)
        self.overhead_ms: deque[float] = deque(maxlen=_TIMING_WINDOW)
        self._last_rate = (self.started, 0)
        self.first_frame_at: float | None = None
        self.last_frame_at: float | None = None

    @property
    def uptime(self) -> float:
        return time.monotonic() - self.started

    def record_frame(self, inference_s: float, total_s: float) -> None:
        now = time.monotonic()
        if self.first_frame_at is None:
            self.first_frame_at = now - total_s
        self.last_frame_at = now
        self.frames_processed += 1
        self.inference_ms.append(inference_s * 1e3)
        self.overhead_ms.append(max(total_s - inference_s, 0.0) * 1e3)

    def record_event(self, class_names: list[str]) -> None:
        self.events += 1
        self.defects_by_class.update(class_names)
        self.frames_by_class.update(set(class_names))

    def fps_since_last_call(self) -> float:
        """Processed frames per second since the previous call (or since start)."""
        now, processed = time.monotonic(), self.frames_processed
        then, before = self._last_rate
        self._last_rate = (now, processed)
        return (processed - before) / (now - then) if now > then else 0.0

    def processing_fps(self) -> float:
        """Frames per second from the start of the first frame to the end of the last one."""
        if self.first_frame_at is None or self.last_frame_at <= self.first_frame_at:
            return 0.0
        return self.frames_processed / (self.last_frame_at - self.first_frame_at)


def percentiles(values, qs=(50, 99)) -> dict[str, float | None]:
    data = np.fromiter(list(values), dtype=np.float64)
    if data.size == 0:
        return {f"p{q}": None for q in qs}
    return {f"p{q}": round(float(v), 3) for q, v in zip(qs, np.percentile(data, qs), strict=True)}


def utc_iso(timestamp: float) -> str:
    """UTC ISO-8601 with milliseconds and a Z, e.g. 2024-05-01T12:00:00.123Z."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def stats_payload(
    stats: Stats,
    *,
    line: str,
    camera: str,
    frames_dropped: int,
    frame_queue_depth: int,
    events_rejected: int,
    events_refused: int,
    outbox: dict[str, int],
    camera_state: str,
    camera_counters: dict[str, int],
    mqtt_state: str,
) -> dict:
    return {
        "schema": STATS_SCHEMA,
        "ts": utc_iso(time.time()),
        "line": line,
        "camera": camera,
        "uptime_s": round(stats.uptime, 3),
        "frames_in": stats.frames_in,
        "frames_processed": stats.frames_processed,
        "frames_dropped": frames_dropped,
        "frames_failed": stats.frames_failed,
        "model_faults": stats.model_faults,
        "fps": round(stats.fps_since_last_call(), 3),
        "inference_ms": percentiles(stats.inference_ms),
        "overhead_ms": percentiles(stats.overhead_ms),
        "frame_queue_depth": frame_queue_depth,
        "events": stats.events,
        "events_rejected": events_rejected,
        "events_refused": events_refused,
        "outbox_depth": outbox["depth"],
        "outbox_dropped": outbox["dropped"],
        "outbox_errors": outbox["errors"],
        "outbox_replaced": outbox["replaced"],
        "camera_state": camera_state,
        "camera_counters": dict(camera_counters),
        "mqtt_state": mqtt_state,
    }
