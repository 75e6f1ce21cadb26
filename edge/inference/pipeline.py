"""The frame pipeline: grabber thread -> frame queue -> inference thread -> event sink.

The grabber reads the source, places every frame on the strip (coil, MD; frames dropped later
still advance the coil) and queues it (dropping the oldest when inference lags). The inference
thread tiles each frame with `edge.inference.tiling.tile_frame` (the tile layout is computed once
per frame
size, then tiles are copied straight into the batch), runs the tiles in batches, hands the
probabilities to the inspection (defect objects and coils, edge.defects.inspection) and its
payloads to the sink (the publisher's non-blocking `submit`). While inspection is paused (the
`pause` command) the grabber still places and counts every frame but queues none. Each loop
checks its stop event at least every `_POLL_S` seconds. The inference loop kicks the systemd
watchdog on every turn, so a stuck runtime stops the pings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from edge.config import TilingConfig
from edge.defects.events import DefectRule
from edge.errors import ConfigError, ModelError, ModelFault
from edge.inference.framequeue import FrameQueue
from edge.inference.model import LoadedModel
from edge.inference.tiling import TilingError, tile_frame
from edge.observe.ratelimit import RateLimitedLog
from edge.observe.sdnotify import Watchdog
from edge.observe.stats import Stats
from edge.sources.base import CameraState, Frame, FrameSource

if TYPE_CHECKING:  # the daemon wires them in; the pipeline only calls them
    from edge.control.pause import InspectionPause
    from edge.defects.inspection import CoilInspection, TileInspection
    from edge.defects.position import StripLocator

log = logging.getLogger(__name__)

_POLL_S = 0.2


class FrameProcessor:
    """Frame -> tiles -> probabilities -> defects (no threads; the benchmark calls it directly)."""

    def __init__(self, model: LoadedModel, rule: DefectRule, tiling: TilingConfig) -> None:
        spec = model.runtime.input_spec
        if spec.height != spec.width:
            raise ModelError(f"{model.path}: tiles must be square, model takes {spec.width}x"
                             f"{spec.height}")
        problem = tiling.problem_with(spec.height)
        if problem:
            raise ConfigError(f"{problem}; {model.path} takes {spec.width}x{spec.height} tiles")
        self.runtime = model.runtime
        self.rule = rule
        self.tile = spec.height
        self.stride = tiling.stride_for(self.tile)
        self.roi = tiling.roi
        self._batch = np.zeros((0, *spec.tile_shape), dtype=np.uint8)
        self._layout_shape: tuple[int, ...] | None = None
        self._corners: list[tuple[int, int]] = []
        self._boxes = np.zeros((0, 4), dtype=np.int32)

    def process(self, image: np.ndarray) -> tuple[list[dict], float]:
        """Defects of one frame (one entry per tile and class) and the seconds in the runtime."""
        probabilities, boxes, inference_s, _ = self.infer(image)
        return self.rule.defects(probabilities, boxes), inference_s

    def infer(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, np.ndarray | None]:
        """Tile probabilities [n, C], tile boxes [n, 4] in frame pixels, seconds in the runtime,
        and the class activation maps [n, C, h, w] (None for a model without them)."""
        image, offset = self._crop(image)
        corners, boxes = self._layout(image, offset)
        batch = self._batch_for(len(corners))
        tiles = batch[..., 0] if batch.shape[-1] == 1 else batch
        size = self.tile
        for i, (x, y) in enumerate(corners):
            tiles[i] = image[y : y + size, x : x + size]
        started = time.perf_counter()
        probabilities, cam = self.runtime.infer_all_with_cam(batch)
        inference_s = time.perf_counter() - started
        return probabilities, boxes, inference_s, cam

    def _layout(
        self, image: np.ndarray, offset: tuple[int, int]
    ) -> tuple[list[tuple[int, int]], np.ndarray]:
        """Tile corners in `image` and boxes in frame pixels; computed once per frame shape."""
        if image.shape != self._layout_shape:
            boxes = tile_frame(image, tile=self.tile, stride=self.stride).boxes
            self._corners = [(int(x), int(y)) for x, y, _, _ in boxes]
            self._boxes = boxes + np.array([*offset, 0, 0], dtype=boxes.dtype)
            self._layout_shape = image.shape
        return self._corners, self._boxes

    def _crop(self, image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        roi = self.roi
        if roi is None:
            return image, (0, 0)
        height, width = image.shape[:2]
        if roi.x + roi.width > width or roi.y + roi.height > height:
            raise TilingError(
                f"tiling.roi {roi.width}x{roi.height}+{roi.x}+{roi.y} lies outside the "
                f"{width}x{height} frame"
            )
        return image[roi.y : roi.y + roi.height, roi.x : roi.x + roi.width], (roi.x, roi.y)

    def _batch_for(self, count: int) -> np.ndarray:
        if len(self._batch) != count:
            self._batch = np.zeros((count, *self._batch.shape[1:]), dtype=np.uint8)
        return self._batch


class Pipeline:
    def __init__(
        self,
        source: FrameSource,
        processor: FrameProcessor,
        inspection: CoilInspection | TileInspection,
        sink: Callable[[str, dict], object],
        stats: Stats,
        watchdog: Watchdog | None = None,
        frame_queue: int = 4,
        lossless: bool = False,
        locator: StripLocator | None = None,
        save_state: Callable[[dict | None], object] | None = None,
        observer: Callable[[Frame, np.ndarray, np.ndarray, list[dict]], object] | None = None,
        pause: InspectionPause | None = None,
    ) -> None:
        self.source = source
        self.processor = processor
        self.inspection = inspection
        self.sink = sink
        self.locator = locator
        self.save_state = save_state
        self.observer = observer  # sees every processed frame (the console's latest frame)
        self.pause = pause  # the `pause` command: frames acquired, placed, counted, not queued
        self.stats = stats
        self.watchdog = watchdog
        self.frames = FrameQueue(frame_queue)
        self.lossless = lossless
        self.source_finished = threading.Event()
        self._stop_grabbing = threading.Event()
        self._stop_inference = threading.Event()
        self._busy = False
        self._faults = RateLimitedLog(log)
        self._threads: list[threading.Thread] = []
        self._swap: tuple[FrameProcessor, dict, threading.Event] | None = None

    @property
    def finished(self) -> bool:
        """The source has no more frames and every queued frame was processed."""
        return self.source_finished.is_set() and len(self.frames) == 0 and not self._busy

    def start(self) -> None:
        for name, target in (("grabber", self._grab_loop), ("inference", self._inference_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, drain_timeout: float = 5.0) -> None:
        """Stop grabbing, let inference finish the queued frames (bounded), stop inference."""
        self._stop_grabbing.set()
        grabber, inference = self._threads or (None, None)
        if grabber is not None:
            grabber.join(drain_timeout)
        self._stop_inference.set()
        if inference is not None:
            inference.join(drain_timeout)
            if inference.is_alive():
                log.error("inference did not finish within %.1f s; giving up on it",
                          drain_timeout)
                self._threads = []
                return
        if self._threads:
            self._emit(self.inspection.stop(), force_state=True)
        self._threads = []

    def swap(self, processor: FrameProcessor, model_info: dict) -> threading.Event:
        """Hand the inference thread a new model; it takes it between two frames. The returned
        event is set once the old processor will not be used again."""
        done = threading.Event()
        self._swap = (processor, model_info, done)
        if not any(t.is_alive() for t in self._threads[1:]):  # no inference thread: now
            self._take_swap()
        return done

    def _take_swap(self) -> None:
        pending, self._swap = self._swap, None
        if pending is not None:
            self.processor, info, done = pending
            self.inspection.use_model(self.processor.rule, info)
            done.set()

    def _grab_loop(self) -> None:
        while not self._stop_grabbing.is_set():
            try:
                frame = self.source.read(_POLL_S)
            except Exception:  # a source must not raise; if one does, keep the daemon alive
                log.exception("frame source failed")
                self._stop_grabbing.wait(1.0)
                continue
            if frame is None:
                if self.source.state is CameraState.FINISHED and not self.source_finished.is_set():
                    log.info("frame source finished")
                    self.source_finished.set()
                continue
            self.stats.frames_in += 1
            if self.locator is not None:
                frame.meta["placement"] = self.locator.place(frame.timestamp,
                                                             frame.image.shape[0])
            if self.pause is not None and self.pause.active:
                self.stats.frames_paused += 1
                self.pause.skipped(frame.meta.get("placement"), frame.image.shape[0],
                                   frame.timestamp)
                continue
            self._queue(frame)

    def _queue(self, frame: Frame) -> None:
        if not self.lossless:
            self.frames.put(frame)
            return
        while not self.frames.put(frame, block=True, timeout=_POLL_S):
            if self._stop_grabbing.is_set():
                return

    def _inference_loop(self) -> None:
        while True:
            if self.watchdog is not None:
                self.watchdog.kick()
            if self._swap is not None:
                self._take_swap()
            frame = self.frames.get(_POLL_S)
            if frame is None:
                if self._stop_inference.is_set():
                    return
                self._guarded(lambda: self._emit(self.inspection.idle()))
                continue
            self._busy = True
            try:
                self._process(frame)
            finally:
                self._busy = False

    def _process(self, frame: Frame) -> None:
        started = time.perf_counter()
        try:
            probabilities, boxes, inference_s, cam = self.processor.infer(frame.image)
        except TilingError as exc:
            self._failed(frame, "tiling", "frame %s skipped: %s", exc)
            return
        except ModelFault as exc:  # the frame was not inspected: never "no defects"
            self._model_fault(str(exc))
            self._failed(frame, "model-fault", "MODEL FAULT on frame %s, frame not inspected: %s",
                         exc)
            return
        except Exception as exc:  # e.g. a runtime error on one batch; the next may work
            self._failed(frame, "inference", "inference failed on frame %s: %s", exc)
            return
        if self.stats.model_faulted:
            self.stats.model_faulted = False  # valid outputs again (the daemon's status says so)
        out, defects = self._guarded(
            lambda: self.inspection.frame(frame, probabilities, boxes, cam), ([], [])
        )
        if defects:
            self.stats.record_event([d["class_name"] for d in defects])
        self._emit(out)
        if self.observer is not None:
            self._guarded(lambda: self.observer(frame, probabilities, boxes, defects or []))
        self.stats.record_frame(inference_s, time.perf_counter() - started)

    def _model_fault(self, reason: str) -> None:
        """Since and reason first, the count last: the daemon's tick reads the count from
        another thread and then the fields."""
        stats = self.stats
        if stats.model_fault_since is None:  # the daemon clears it when its status says ok
            stats.model_fault_since = time.time()
        stats.model_fault_reason = reason
        stats.model_faulted = True
        stats.model_faults += 1

    def _failed(self, frame: Frame, key: str, message: str, exc: Exception) -> None:
        self.stats.frames_failed += 1
        self._faults.warning(key, message, frame.frame_id, exc)
        self._emit(self._guarded(lambda: self.inspection.failed(frame), []))

    def _emit(self, payloads, force_state: bool = False) -> None:
        for kind, payload in payloads or []:
            self.sink(kind, payload)
        if self.save_state is not None:
            state = self._guarded(lambda: self.inspection.state(force_state), False)
            if state is not False:
                self.save_state(state)

    def _guarded(self, step, fallback=None):
        """A fault in the coil bookkeeping or an observer is logged; inference goes on."""
        try:
            return step()
        except Exception:
            log.exception("coil bookkeeping or frame observer failed")
            return fallback
