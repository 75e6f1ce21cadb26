"""The archive writer: defect crops (and optionally whole frames) as JPEGs, on its own thread.

`submit` is called by the inference side: it copies the crops it needs, puts one job per frame on
a bounded queue and returns at once with the paths (relative to the archive root) the images
will have. A full queue drops the frame's images, counted; the caller's events carry no `image`
then, and are never held back. The thread encodes and writes each file atomically, sweeps
retention every `retention_interval_s`, and turns a full, read-only or unwritable disk into a
state and a counter, never an exception out of the thread.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.archive import files, retention
from edge.config import ArchiveConfig

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels
Store = Callable[[Path, bytes], None]
GET_TIMEOUT_S = 0.5
BYTES_PER_GB = 1e9


@dataclass(frozen=True)
class DefectCrop:
    defect_id: int
    box_px: Box


@dataclass(frozen=True)
class _Job:
    images: list[tuple[str, np.ndarray]]  # (relative path, pixels)
    made: tuple[tuple[str, Callable[[], bytes]], ...] = ()  # (relative path, encoder) e.g. maps


def crop_box(box: Box, margin: int, height: int, width: int) -> tuple[int, int, int, int]:
    """The box grown by `margin` on each side and clipped to the frame: x0, y0, x1, y1."""
    x, y, w, h = box
    return (max(0, x - margin), max(0, y - margin),
            min(width, x + w + margin), min(height, y + h + margin))


class ArchiveWriter:
    """Use as a context manager or call `start()` / `stop()`."""

    def __init__(self, config: ArchiveConfig, store: Store = files.write_atomic) -> None:
        self.config = config
        self.root = Path(config.path) if config.path is not None else Path(".")
        self._store = store  # tests inject a slow or failing one
        self._queue: queue.Queue[_Job] = queue.Queue(maxsize=config.queue)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._counts = {"submitted": 0, "written": 0, "dropped_queue_full": 0,
                        "dropped_at_stop": 0, "write_errors": 0, "deleted_by_age": 0,
                        "deleted_by_size": 0, "folders_moved": 0}
        self._moves: list[tuple[str, str]] = []  # (old, new) coil folders, applied by the thread
        self._bytes_written = 0
        self._kept_bytes = 0
        self._state = files.OK
        self._last_error = ""
        self._next_sweep = 0.0

    # --- inference side -------------------------------------------------------------------

    def submit(self, frame: np.ndarray, coil_folder: str, frame_id: str,
               defects: Sequence[DefectCrop], record: dict | None = None) -> dict[int, str]:
        """Queue the crops of `defects` (and the whole frame if configured) of one frame.

        Returns {defect_id: crop path relative to the archive root} for the images queued, or {}
        when the archive is off, there is nothing to archive, or the queue was full (counted).
        Never blocks. The whole frame is referenced, not copied: the caller must not write into
        it afterwards (frames from the sources are fresh arrays). With the whole frame, `record`
        (the decisions on it) is written beside it as JSON, after the frame.
        """
        if not self.config.enabled or not defects:
            return {}
        height, width = frame.shape[:2]
        images, paths = [], {}
        for defect in defects:
            x0, y0, x1, y1 = crop_box(defect.box_px, self.config.margin_px, height, width)
            if x1 <= x0 or y1 <= y0:
                continue
            relative = f"{coil_folder}/{files.defect_image_name(defect.defect_id)}"
            images.append((relative, frame[y0:y1, x0:x1].copy()))
            paths[defect.defect_id] = relative
        made: tuple = ()
        if self.config.whole_frame and images:
            images.append((f"{coil_folder}/{files.frame_image_name(frame_id)}", frame))
            if record is not None:
                made = ((f"{coil_folder}/{files.frame_record_name(frame_id)}",
                         lambda: json.dumps(record, allow_nan=False).encode()),)
        try:
            self._queue.put_nowait(_Job(images, made))
        except queue.Full:
            self._count("dropped_queue_full", len(images) + len(made))
            return {}
        self._count("submitted", len(images) + len(made))
        return paths

    def move_folder(self, old: str, new: str) -> None:
        """Have the thread move coil folder `old` into `new` (a coil named after its first
        frames); never blocks, never dropped. Images still queued for `old` land in `new`."""
        if self.config.enabled and old != new:
            with self._lock:
                self._moves.append((old, new))

    def submit_file(self, relative: str, make: Callable[[], bytes]) -> str | None:
        """Queue a file whose bytes `make()` produces on the writer thread (a coil map: drawing
        and encoding it never costs inference time); its relative path, or None if dropped."""
        if not self.config.enabled:
            return None
        try:
            self._queue.put_nowait(_Job([], ((relative, make),)))
        except queue.Full:
            self._count("dropped_queue_full", 1)
            return None
        self._count("submitted", 1)
        return relative

    def stats(self) -> dict:
        with self._lock:
            return {**self._counts, "state": self._state, "last_error": self._last_error,
                    "queued": self._queue.qsize(), "bytes_written": self._bytes_written,
                    "archive_bytes": self._kept_bytes}

    @property
    def state(self) -> str:
        return self._state

    # --- thread ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="archive", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued for up to `timeout` seconds; the rest is dropped, counted."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("archive writer still busy after %.1f s; leaving it", timeout)
        dropped = 0
        while True:
            try:
                job = self._queue.get_nowait()
                dropped += len(job.images) + len(job.made)
            except queue.Empty:
                break
        if dropped:
            self._count("dropped_at_stop", dropped)
            log.warning("archive: %d image(s) not written at stop", dropped)

    def __enter__(self) -> ArchiveWriter:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        while True:
            self._maybe_sweep()
            self._apply_moves()
            try:
                job = self._queue.get(timeout=GET_TIMEOUT_S)
            except queue.Empty:
                if self._stop.is_set():
                    self._apply_moves()
                    return
                continue
            for relative, pixels in job.images:
                self._write(relative, lambda pixels=pixels: self._jpeg(pixels))
            for relative, make in job.made:
                self._write(relative, make)
            if self._stop.is_set() and self._queue.empty():
                self._apply_moves()
                return

    def _apply_moves(self) -> None:
        with self._lock:
            moves, self._moves = self._moves, []
        for old, new in moves:
            try:
                moved = files.move_folder(self.root, old, new)
            except OSError as exc:
                self._failed(f"{old} -> {new}", files.disk_state(exc), f"{exc.strerror or exc}")
                continue
            self._count("folders_moved", 1)
            log.info("archive: coil folder %s is now %s (%d files moved, the old name links to "
                     "it)", old, new, moved)

    def _jpeg(self, pixels: np.ndarray) -> bytes:
        ok, encoded = cv2.imencode(".jpg", pixels,
                                   [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality])
        if not ok:
            raise ValueError("OpenCV could not encode the image")
        return encoded.tobytes()

    def _write(self, relative: str, make: Callable[[], bytes]) -> None:
        try:
            data = make()
            self._store(self.root / relative, data)
        except OSError as exc:
            self._failed(relative, files.disk_state(exc), f"{exc.strerror or exc}")
            return
        except Exception as exc:  # never let one image end the thread
            self._failed(relative, files.ERROR, str(exc))
            return
        with self._lock:
            self._counts["written"] += 1
            self._bytes_written += len(data)
            self._kept_bytes += len(data)
            recovered, self._state = self._state != files.OK, files.OK
        if recovered:
            log.info("archive %s: writing again", self.root)

    def _failed(self, relative: str, state: str, reason: str) -> None:
        with self._lock:
            self._counts["write_errors"] += 1
            changed = state != self._state
            self._state, self._last_error = state, f"{relative}: {reason}"
        if changed:
            log.warning("archive %s: cannot write %s (%s): disk %s; images are counted as "
                        "lost until it recovers", self.root, relative, reason, state)

    def _maybe_sweep(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.config.retention_interval_s
        try:
            result = retention.sweep(self.root, int(self.config.max_gb * BYTES_PER_GB),
                                     self.config.max_days * 86400.0)
        except OSError as exc:
            log.warning("archive %s: retention sweep failed: %s", self.root, exc)
            return
        with self._lock:
            self._counts["deleted_by_age"] += result.deleted_by_age
            self._counts["deleted_by_size"] += result.deleted_by_size
            self._kept_bytes = result.kept_bytes

    def _count(self, key: str, n: int) -> None:
        with self._lock:
            self._counts[key] += n
