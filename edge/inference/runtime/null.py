"""A runtime that runs no model: every tile gets the same fixed probabilities.

For tests and benchmarks of everything around inference (tiling, thresholds, events, outbox,
MQTT) without the cost or the variability of a real model. It checks its batches exactly like the
real backends do, so a pipeline that feeds it wrong shapes fails the same way.

    load_runtime("null", "null", probabilities=[0.9, 0.1, 0.1], max_batch=8)

The path is not read; it only names the runtime in logs. With `cam=(h, w)` it also has a `cam`
output: every cell holds the class's logit, so sigmoid(mean(cam)) equals the probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.errors import ModelError
from edge.inference.runtime.base import InputSpec, Runtime

DEFAULT_PROBABILITIES = (0.0, 0.0, 0.0)


class NullRuntime(Runtime):
    backend = "null"

    def __init__(
        self,
        path: Path | str = "null",
        probabilities: Sequence[float] = DEFAULT_PROBABILITIES,
        max_batch: int = 16,
        tile: int = 256,
        channels: int = 1,
        threads: int = 0,  # accepted like the real backends' option; nothing to run
        cam: tuple[int, int] | None = None,
    ) -> None:
        row = np.asarray(probabilities, dtype=np.float32)
        if row.ndim != 1 or row.size == 0 or not np.all((row >= 0) & (row <= 1)):
            raise ModelError(
                f"null runtime: probabilities must be a non-empty list in [0, 1], "
                f"got {list(probabilities)}"
            )
        if max_batch < 1:
            raise ModelError(f"null runtime: max_batch must be >= 1, got {max_batch}")
        self.path = Path(path)
        self._row = row
        self._spec = InputSpec(
            name="image", height=tile, width=tile, channels=channels, max_batch=max_batch
        )
        self._closed = False
        self._cam = None if cam is None else _constant_cam(row, cam)

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    @property
    def num_outputs(self) -> int:
        return self._row.size

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if self._closed:
            raise ModelError("null runtime: infer() after close()")
        batch = self.check_batch(batch)
        return np.tile(self._row, (len(batch), 1))

    @property
    def cam_shape(self) -> tuple[int, int] | None:
        return None if self._cam is None else tuple(self._cam.shape[1:])

    def infer_with_cam(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        probabilities = self.infer(batch)
        if self._cam is None:
            return probabilities, None
        return probabilities, np.repeat(self._cam[None], len(batch), axis=0)

    def _drop_cam(self) -> None:
        self._cam = None

    def close(self) -> None:
        self._closed = True


def _constant_cam(row: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    height, width = (int(v) for v in shape)
    if height < 1 or width < 1:
        raise ModelError(f"null runtime: cam shape must be positive, got {shape}")
    clipped = np.clip(row.astype(np.float64), 1e-7, 1 - 1e-7)
    logits = np.log(clipped / (1 - clipped)).astype(np.float32)
    return np.broadcast_to(logits[:, None, None], (row.size, height, width)).copy()
