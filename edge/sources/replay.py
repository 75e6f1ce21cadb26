"""Replay source: a folder of images played back as camera frames, at a set rate or flat out.

Files that cannot be decoded (corrupt, truncated JPEGs without their end-of-image marker) or whose
size differs from the expected one are logged, counted and skipped; they never stop the replay.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from edge.config import ReplayCameraConfig
from edge.errors import ConfigError
from edge.imageio import UnreadableImage, WrongImageSize, read_gray, scan_images
from edge.sources.base import CameraState, Frame, FrameSource

log = logging.getLogger(__name__)


class ReplaySource(FrameSource):
    def __init__(self, config: ReplayCameraConfig) -> None:
        self._config = config
        self._files: list[Path] = []
        self._position = 0
        self._pass = 0
        self._pass_frames = 0
        self._size: tuple[int, int] | None = (
            (config.width, config.height) if config.width and config.height else None
        )
        self._state = CameraState.CONNECTING
        self._started = 0.0
        self._emitted = 0
        self._counters = {"frames": 0, "skipped_unreadable": 0, "skipped_size": 0,
                          "skipped_not_file": 0, "passes": 0}

    @property
    def state(self) -> CameraState:
        return self._state

    @property
    def counters(self) -> dict[str, int]:
        return dict(self._counters)

    def open(self) -> None:
        folder = self._config.path
        if not folder.is_dir():
            raise ConfigError(f"camera.path: {folder}: folder not found")
        self._files, others = scan_images(folder)
        self._counters["skipped_not_file"] = len(others)
        for path, reason in others[:10]:
            log.warning("replay: skipping %s: %s", path, reason)
        if len(others) > 10:
            log.warning("replay: skipping %d more entries that are not image files",
                        len(others) - 10)
        self._position, self._pass, self._pass_frames, self._emitted = 0, 0, 0, 0
        self._started = time.monotonic()
        if not self._files:
            log.warning("replay folder %s holds no images", folder)
            self._state = CameraState.FINISHED
            return
        log.info("replaying %d images from %s", len(self._files), folder)
        self._state = CameraState.OK

    def read(self, timeout: float) -> Frame | None:
        if self._state is not CameraState.OK:
            if self._state is CameraState.FINISHED:
                time.sleep(min(timeout, 0.05))  # nothing more will come; do not spin the caller
            return None
        if not self._wait_until_due(timeout):
            return None
        while self._state is CameraState.OK:
            path = self._next_path()
            if path is None:
                return None
            image = self._load(path)
            if image is not None:
                return self._frame(path, image)
        return None

    def close(self) -> None:
        self._state = CameraState.STOPPED

    def _wait_until_due(self, timeout: float) -> bool:
        if self._config.rate <= 0:
            return True
        due = self._started + self._emitted / self._config.rate
        delay = due - time.monotonic()
        if delay > timeout:
            time.sleep(max(timeout, 0.0))
            return False
        if delay > 0:
            time.sleep(delay)
        return True

    def _next_path(self) -> Path | None:
        if self._position >= len(self._files):
            self._counters["passes"] += 1
            if not self._config.loop or self._pass_frames == 0:
                if self._pass_frames == 0:
                    log.error("replay: no usable image in %s", self._config.path)
                self._state = CameraState.FINISHED
                return None
            self._position, self._pass_frames = 0, 0
            self._pass += 1
        path = self._files[self._position]
        self._position += 1
        return path

    def _load(self, path: Path) -> np.ndarray | None:
        try:
            image = read_gray(path, expected=self._size)
        except WrongImageSize as exc:
            self._counters["skipped_size"] += 1
            log.warning("replay: skipping %s: %s", path, exc)
            return None
        except UnreadableImage as exc:
            self._counters["skipped_unreadable"] += 1
            log.warning("replay: skipping %s: %s", path, exc)
            return None
        if self._size is None:
            self._size = (image.shape[1], image.shape[0])
        return image

    def _frame(self, path: Path, image: np.ndarray) -> Frame:
        self._emitted += 1
        self._pass_frames += 1
        self._counters["frames"] += 1
        return Frame(
            frame_id=path.name,
            timestamp=time.time(),
            image=image,
            meta={"path": str(path), "pass": self._pass},
        )
