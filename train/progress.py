"""Progress with an ETA for long numpy-side steps (evaluation), numpy only.

`ProgressPredictor` wraps a predictor and counts the tiles it scores: a log line at most every
`interval` seconds with the share done and the time left, so tens of seconds of a ResNet152
evaluation are never silent. Plain lines (no bars), so log files stay readable.
"""

from __future__ import annotations

import logging
import time

import numpy as np

log = logging.getLogger(__name__)

LOG_INTERVAL_S = 10.0


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressPredictor:
    """A predictor that logs `label: done/total tiles (x%), ETA m:ss` while it runs."""

    def __init__(self, predict, total_tiles: int, label: str, interval: float = LOG_INTERVAL_S,
                 clock=time.monotonic) -> None:
        self.predict, self.total, self.label = predict, max(1, int(total_tiles)), label
        self.interval, self.clock = interval, clock
        self.done = 0
        self.started = self.last_log = clock()

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        scores = self.predict(tiles)
        self.done += len(tiles)
        now = self.clock()
        if now - self.last_log >= self.interval and self.done < self.total:
            self.last_log = now
            log.info("%s", self.status(now))
        return scores

    def status(self, now: float) -> str:
        elapsed = now - self.started
        left = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        eta = format_duration(left) if np.isfinite(left) else "?"
        share = 100.0 * self.done / self.total
        return f"{self.label}: {self.done}/{self.total} tiles ({share:.0f}%), ETA {eta}"


def split_tiles(folder, n_images: int, settings) -> int:
    """Tiles `score_split` predicts for n images: the evaluation crops plus every frame's tiles."""
    from edge.inference.tiling import tile_boxes  # noqa: PLC0415

    per_frame = len(tile_boxes(folder.height, folder.width, settings.tile, settings.frame_stride))
    return n_images * (settings.crops_per_image + per_frame)
