"""The frame-source interface shared by the GenICam grabber and the replay source."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


class CameraState(StrEnum):
    CONNECTING = "connecting"
    OK = "ok"
    LOST = "lost"
    FINISHED = "finished"  # a replay source that has no more frames
    STOPPED = "stopped"


@dataclass
class Frame:
    """One acquired frame. `image` is uint8 HxW (grayscale) as the model expects, owned by us."""

    frame_id: str
    timestamp: float  # UTC seconds since the epoch at acquisition
    image: np.ndarray
    meta: dict = field(default_factory=dict)


class FrameSource(ABC):
    """Opened with `open()`, read with `read(timeout)`, closed with `close()`.

    `read` returns a Frame, or None when nothing arrived within `timeout` seconds (the caller
    checks its stop event and calls again). It never raises for camera faults: it reconnects with
    backoff and reports them through `state`. A finished replay source has state FINISHED.
    """

    @property
    @abstractmethod
    def state(self) -> CameraState: ...

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self, timeout: float) -> Frame | None: ...

    @abstractmethod
    def close(self) -> None: ...

    @property
    def counters(self) -> dict[str, int]:
        """Source-specific counters (frames read, skipped files, reconnects...)."""
        return {}

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
