"""The bounded queue between the grabber and inference: when full, the oldest frame is dropped.

A live camera must never be slowed by inference, so the freshest frames win; every drop is
counted. `put(..., block=True)` waits instead (lossless replay of a folder).
"""

from __future__ import annotations

import threading
from collections import deque

from edge.sources.base import Frame


class FrameQueue:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.dropped = 0
        self._frames: deque[Frame] = deque()
        self._changed = threading.Condition()

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, frame: Frame, block: bool = False, timeout: float | None = None) -> bool:
        """Queue a frame; False if it was not queued (block=True and still full at timeout)."""
        with self._changed:
            if block and not self._changed.wait_for(
                lambda: len(self._frames) < self.capacity, timeout
            ):
                return False
            while len(self._frames) >= self.capacity:
                self._frames.popleft()
                self.dropped += 1
            self._frames.append(frame)
            self._changed.notify_all()
            return True

    def get(self, timeout: float) -> Frame | None:
        with self._changed:
            if not self._changed.wait_for(lambda: self._frames, timeout):
                return None
            frame = self._frames.popleft()
            self._changed.notify_all()
            return frame
