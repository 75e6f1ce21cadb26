"""Inspection paused by the `pause` command (docs/mqtt.md, "Commands from SCADA").

While paused the camera keeps acquiring: every frame is still placed on the strip (coil and MD
go on) and counted in `frames_paused`, but never inspected, so a coil report's coverage shows
the gap and no paused stretch can pass for "no defects". The status, stats, Sparkplug metrics,
/metrics and /healthz all say "paused".

A pause is not kept across restarts: a daemon that starts inspects. The STATE_DIR/paused.json
marker written while paused only lets the next start say loudly that a pause ended with it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge.observe.stats import utc_iso

log = logging.getLogger(__name__)

MARKER = "paused.json"


@dataclass
class PausedCoil:
    """What the grabber saw of a coil while paused: enough to report a coil never inspected."""

    first: object  # edge.defects.position.Placement of its first paused frame
    last: object  # ... and of its last one
    height_px: int
    last_ts: float


class InspectionPause:
    def __init__(self, state_dir: Path) -> None:
        self.marker = Path(state_dir) / MARKER
        self._lock = threading.Lock()
        # (since, by, reason) while paused, else None: swapped whole, read once by other threads
        self._held: tuple[float, str | None, str | None] | None = None
        # coil_key -> frames acquired while paused, and what was seen of the coil (written by
        # the grabber; the inference thread reads and pops them when the coil is reported)
        self.frames_by_coil: dict[int, int] = {}
        self.coils: dict[int, PausedCoil] = {}
        self._coils_lock = threading.Lock()  # the grabber's skipped() against coil_reported()
        self._reported_key: int | None = None  # the highest coil key reported (keys increase)

    @property
    def active(self) -> bool:
        return self._held is not None

    def skipped(self, placement, height_px: int, timestamp: float) -> None:
        """The grabber acquired a frame while paused (placement None: events v1, no coil)."""
        if placement is None:
            return
        key = placement.coil_key
        with self._coils_lock:
            if self._reported_key is not None and key <= self._reported_key:
                return  # a late frame of a coil already reported: no second report of it
            seen = self.coils.get(key)
            if seen is None:
                self.coils[key] = PausedCoil(placement, placement, height_px, timestamp)
            else:
                seen.last, seen.height_px, seen.last_ts = placement, height_px, timestamp
            self.frames_by_coil[key] = self.frames_by_coil.get(key, 0) + 1

    def coil_reported(self, key: int) -> None:
        """The inference thread is reporting this coil (called before its report is built):
        paused frames of it, or of an earlier coil, acquired from now on are left out."""
        with self._coils_lock:
            if self._reported_key is None or key > self._reported_key:
                self._reported_key = key
            self.coils.pop(key, None)

    def pause(self, by: str | None, reason: str | None) -> dict:
        with self._lock:
            if self._held is None:
                self._held = (time.time(), by, reason)
                self._write_marker()
                log.warning("INSPECTION PAUSED by %s (%s): frames are acquired and counted, NOT "
                            "inspected, until `resume` or a restart", by or "?", reason or "-")
            return self.status()

    def resume(self, by: str | None) -> dict:
        with self._lock:
            if self._held is not None:
                log.warning("inspection resumed by %s after %.0f s paused", by or "?",
                            time.time() - self._held[0])
                self._held = None
                self._remove_marker()
            return self.status()

    def status(self) -> dict:
        """For the status message, the stats and the command answers."""
        held = self._held
        if held is None:
            return {"state": "running"}
        since, by, reason = held
        return {"state": "paused", "since": utc_iso(since), "by": by, "reason": reason}

    def describe(self) -> str:
        held = self._held
        if held is None:
            return "running"
        since, by, reason = held
        return f"paused by {by or '?'} for {time.time() - since:.0f} s ({reason or '-'})"

    def report_previous_run(self) -> None:
        """At start: a pause the last run ended with does not carry over; say so loudly."""
        try:
            saved = json.loads(self.marker.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            saved = {"error": str(exc)}
        log.warning("INSPECTION WAS PAUSED when the daemon last stopped (%s); a pause does not "
                    "survive a restart: inspecting again now (send `pause` to pause again)",
                    json.dumps(saved, allow_nan=False))
        self._remove_marker()

    def _write_marker(self) -> None:
        try:
            self.marker.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.marker.with_suffix(".tmp")
            temporary.write_text(json.dumps(self.status(), allow_nan=False))
            os.replace(temporary, self.marker)
        except OSError as exc:  # only the restart's warning depends on it
            log.warning("%s: cannot write the pause marker: %s", self.marker, exc)

    def _remove_marker(self) -> None:
        try:
            self.marker.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("%s: cannot remove the pause marker: %s", self.marker, exc)
