"""The "latest frame" for the console: `latest/{camera}.jpg` and `latest/{camera}.json`.

The inference thread calls `offer()` with every frame; it only keeps a reference to the newest
one (overwriting an unwritten one, counted as `replaced`) when `interval_s` has passed since the
last one taken, so it costs nothing measurable and never waits on disk. Its own thread encodes
the JPEG and writes both files atomically (temp file + rename: a reader sees the old or the new
file, never half of one); the JPEG first, so the metadata never describes a frame not yet there.
A failing disk is logged (rate-limited) and counted; it never stops inspection.

`{camera}.json` (schema `steel-inspect/latest-frame/v1`): `camera`, `frame_id`, `ts`, `width`,
`height`, `tile_px`, `classes` (names), `thresholds` (applied, per class), `tiles` (`box`
[x, y, w, h] in frame px and `scores`, one probability per class) and `defects` (`class_id`,
`class_name`, `score`, `box_px`) of that frame.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.observe.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

SCHEMA = "steel-inspect/latest-frame/v1"
_STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class LatestFrame:
    pixels: np.ndarray  # uint8 gray (H, W) or BGR (H, W, 3)
    frame_id: str
    ts: str
    tile_px: int
    boxes: list[tuple[int, int, int, int]]
    scores: np.ndarray  # (tiles, classes)
    classes: list[str]
    thresholds: list[float]
    defects: list[dict]

    def metadata(self, camera: str) -> dict:
        height, width = self.pixels.shape[:2]
        return {
            "schema": SCHEMA, "camera": camera, "frame_id": self.frame_id, "ts": self.ts,
            "width": int(width), "height": int(height), "tile_px": self.tile_px,
            "classes": list(self.classes), "thresholds": [float(t) for t in self.thresholds],
            "tiles": [{"box": [int(v) for v in box], "scores": [round(float(p), 4) for p in row]}
                      for box, row in zip(self.boxes, self.scores, strict=True)],
            "defects": self.defects,
        }


class LatestFrameWriter:
    def __init__(self, root: Path, camera: str, interval_s: float = 1.0,
                 jpeg_quality: int = 85) -> None:
        if interval_s <= 0 or not 1 <= jpeg_quality <= 100:
            raise ValueError("interval_s must be > 0 and jpeg_quality 1-100")
        self.folder = Path(root) / "latest"
        self.camera = camera
        self.interval_s = interval_s
        self.jpeg_quality = jpeg_quality
        self.written = 0
        self.replaced = 0
        self.errors = 0
        self._pending: LatestFrame | None = None
        self._last_taken = -float("inf")
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ratelog = RateLimitedLog(log)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="latest-frame", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(_STOP_TIMEOUT_S)

    def due(self) -> bool:
        """Would `offer` take a frame now? Lets callers skip building one (no lock: a stale
        answer only means one frame more or less is built; `offer` decides)."""
        return time.monotonic() - self._last_taken >= self.interval_s

    def offer(self, frame: LatestFrame) -> bool:
        """Keep `frame` for writing if the interval has passed; never blocks. True if taken."""
        now = time.monotonic()
        with self._lock:
            if now - self._last_taken < self.interval_s:
                return False
            if self._pending is not None:
                self.replaced += 1
            self._pending, self._last_taken = frame, now
        self._wake.set()
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            with self._lock:
                frame, self._pending = self._pending, None
            if frame is not None:
                self.write(frame)

    def write(self, frame: LatestFrame) -> None:
        """Encode and write `frame` now, in the calling thread (the loop and tools use it)."""
        try:
            ok, jpeg = cv2.imencode(".jpg", frame.pixels,
                                    [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                raise OSError("JPEG encoding failed")
            meta = json.dumps(frame.metadata(self.camera), allow_nan=False).encode()
            self.folder.mkdir(parents=True, exist_ok=True)
            _write_atomically(self.folder / f"{self.camera}.jpg", jpeg.tobytes())
            _write_atomically(self.folder / f"{self.camera}.json", meta)
            self.written += 1
        except (OSError, ValueError) as exc:
            self.errors += 1
            self._ratelog.warning("latest-frame", "latest frame not written to %s: %s",
                                  self.folder, exc)


def _write_atomically(path: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(temp, 0o644)  # mkstemp makes 0600; the console runs as another user
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
