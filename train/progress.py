"""Progress with an ETA for long steps, numpy only (train's evaluation, convert's export,
INT8 calibration and gate).

`Progress` counts the units of one step (tiles, batches) and says how far it is: on a terminal
one line redrawn in place, elsewhere (a log file, a pipe) a plain log line at most every
`interval` seconds, so tens of seconds of a ResNet152 evaluation are never silent and log files
stay readable. A step without a count (a child process) gets its elapsed time instead.
`ProgressPredictor` wraps a predictor and counts the tiles it scores.
"""

from __future__ import annotations

import logging
import sys
import time

import numpy as np

log = logging.getLogger(__name__)

LOG_INTERVAL_S = 10.0
REDRAW_INTERVAL_S = 0.5


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """`label: done/total unit (x%), ETA m:ss` (or `label: m:ss elapsed` without a total)."""

    def __init__(self, total: int | None, label: str, unit: str = "tiles",
                 interval: float | None = None, clock=time.monotonic, stream=None) -> None:
        self.total = None if total is None else max(1, int(total))
        self.label, self.unit, self.clock = label, unit, clock
        self.interval = LOG_INTERVAL_S if interval is None else interval
        self.stream = sys.stderr if stream is None else stream
        self.terminal = _is_terminal(self.stream)
        self.done = 0
        self.started = self.last_shown = clock()
        self.drawn = False

    def update(self, count: int = 1) -> None:
        self.done += count
        self.tick()

    def tick(self) -> None:
        """Show the status if it is time (also for a step without a count: its elapsed time)."""
        now = self.clock()
        if self.total is not None and self.done >= self.total:
            return  # finished: `close` says so
        if now - self.last_shown < (min(REDRAW_INTERVAL_S, self.interval) if self.terminal
                                    else self.interval):
            return
        self.last_shown = now
        if self.terminal:
            self.stream.write(f"\r{self.status(now)}\x1b[K")
            self.stream.flush()
            self.drawn = True
        else:
            log.info("%s", self.status(now))

    def status(self, now: float) -> str:
        elapsed = now - self.started
        if self.total is None:
            return f"{self.label}: {format_duration(elapsed)} elapsed"
        left = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        eta = format_duration(left) if np.isfinite(left) else "?"
        share = 100.0 * self.done / self.total
        return f"{self.label}: {self.done}/{self.total} {self.unit} ({share:.0f}%), ETA {eta}"

    def close(self, finished: bool = True) -> None:
        """Clear the terminal line and log one line with the step's time (or, for a step that
        failed or was interrupted, how far it got)."""
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False
        took = format_duration(self.clock() - self.started)
        if finished:
            counted = f"{self.done} {self.unit} " if self.total is not None else ""
            log.info("%s: %sdone in %s", self.label, counted, took)
            return
        counted = f" ({self.done}/{self.total} {self.unit})" if self.total is not None else ""
        log.info("%s: stopped after %s%s", self.label, took, counted)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(finished=exc_type is None)


class ProgressPredictor(Progress):
    """A predictor that reports the tiles it scored (`Progress` over its calls)."""

    def __init__(self, predict, total_tiles: int, label: str, interval: float | None = None,
                 clock=time.monotonic, stream=None) -> None:
        super().__init__(total_tiles, label, "tiles", interval, clock, stream)
        self.predict = predict

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        scores = self.predict(tiles)
        self.update(len(tiles))
        return scores


def split_tiles(folder, n_images: int, settings) -> int:
    """Tiles `score_split` predicts for n images: the evaluation crops plus every frame's tiles."""
    from edge.inference.tiling import tile_boxes  # noqa: PLC0415

    per_frame = len(tile_boxes(folder.height, folder.width, settings.tile, settings.frame_stride))
    return n_images * (settings.crops_per_image + per_frame)
