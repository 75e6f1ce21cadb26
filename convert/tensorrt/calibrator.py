"""INT8 entropy calibrator fed by training-split tiles, with a cache file.

The cache file name (made by `convert.build`) carries the backend, the ONNX hash and the
calibration data hash, so a cache is reused only for the same model and the same tiles.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import tensorrt as trt

from convert.errors import EngineBuildError
from edge.archive.files import write_atomic
from train.progress import Progress

log = logging.getLogger(__name__)


class TileCalibrator(trt.IInt8EntropyCalibrator2):
    """Feeds `tiles` (already in the engine's input dtype) in batches of exactly `batch`."""

    def __init__(self, tiles: np.ndarray, batch: int, cache_path: Path, cuda) -> None:
        super().__init__()
        self.cache_path = Path(cache_path)
        self.batch = batch
        usable = len(tiles) - len(tiles) % batch
        if usable == 0:
            raise EngineBuildError(
                f"{len(tiles)} calibration tiles are fewer than one batch of {batch}; "
                "raise --calib-images"
            )
        self.tiles = np.ascontiguousarray(tiles[:usable])
        self.position = 0
        self._cuda = cuda
        try:
            self._device = cuda.mem_alloc(self.tiles[:batch].nbytes)
        except cuda.MemoryError as exc:
            raise EngineBuildError(f"out of GPU memory for the calibration batch ({exc})") from None
        self._progress: Progress | None = None
        self.failure: str | None = None  # the binding prints and swallows get_batch's exceptions

    def get_batch_size(self) -> int:
        return self.batch

    def get_batch(self, names):
        """The next batch's device pointer; None at the end. An exception here would be printed
        and dropped by the binding (calibration silently uses fewer batches), so it is recorded
        for EngineBuilder.build to raise, and calibration stops."""
        if self.failure is not None:  # e.g. the cache could not be read: stop at once
            return None
        try:
            return self._next_batch()
        except Exception as exc:
            if self.failure is None:
                self.failure = (f"INT8 calibration failed at tile {self.position} of "
                                f"{len(self.tiles)}: {type(exc).__name__}: {exc}")
            log.error("%s", self.failure)
            return None

    def _next_batch(self):
        if self.position >= len(self.tiles):
            self._close_progress()
            return None
        if self._progress is None:
            self._progress = Progress(len(self.tiles), "INT8 calibration")
        chunk = self.tiles[self.position : self.position + self.batch]
        self._cuda.memcpy_htod(self._device, chunk)
        self.position += self.batch
        self._progress.update(len(chunk))
        return [int(self._device)]

    def read_calibration_cache(self):
        """The cache's bytes, or None (then TensorRT calibrates). The binding swallows exceptions
        from this callback too, so a read error is recorded as the build's failure."""
        try:
            if not self.cache_path.is_file():
                return None
            data = self.cache_path.read_bytes()
        except OSError as exc:
            if self.failure is None:
                self.failure = f"cannot read the calibration cache {self.cache_path}: {exc}"
            log.error("%s", self.failure)
            return None
        log.info("using the calibration cache %s", self.cache_path)
        return data

    def write_calibration_cache(self, cache) -> None:
        """Written whole through a temporary file (builds may run side by side). A write error
        only costs the next build a calibration: logged, the engine is still good."""
        if self.failure is not None:  # get_batch's None ended calibration early: a partial
            log.warning("calibration failed: not writing the cache %s", self.cache_path)
            return  # cache would be reused by the next build, which would then skip get_batch
        try:
            write_atomic(self.cache_path, bytes(cache))
        except OSError as exc:
            log.error("cannot write the calibration cache %s: %s", self.cache_path, exc)
            return
        log.info("wrote the calibration cache %s", self.cache_path)

    def _close_progress(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None

    def close(self) -> None:
        self._close_progress()
        if self._device is not None:
            self._device.free()
            self._device = None
