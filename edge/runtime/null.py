"""A runtime that runs no model: every tile gets the same fixed probabilities.

For tests and benchmarks of everything around inference (tiling, thresholds, events, outbox,
MQTT) without the cost or the variability of a real model. It checks its batches exactly like the
real backends do, so a pipeline that feeds it wrong shapes fails the same way.

    load_runtime("null", "null", probabilities=[0.9, 0.1, 0.1], max_batch=8)

The path is not read; it only names the runtime in logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.errors import ModelError
from edge.runtime.base import InputSpec, Runtime

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

    def close(self) -> None:
        self._closed = True
