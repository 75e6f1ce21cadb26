"""The one runtime interface every backend implements, and the plugin registry.

A runtime takes a batch of raw uint8 tiles [n, H, W, C] and returns FP32 probabilities [n, K];
`infer_with_cam` also returns the class activation maps [n, K, h, w] (FP32 logits) when the model
has the `cam` output (`convert export-onnx` adds it), else None.
The same code path is used by the conversion gate and by the daemon, so an engine is judged by
exactly the code the line runs.
"""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import ModelError
from edge.inference.runtime.outputs import checked_probabilities

log = logging.getLogger(__name__)

# backend name -> "module:Class"; modules are imported only when their backend is asked for, so a
# CPU line PC never needs pycuda/tensorrt installed.
_BACKENDS = {
    "onnxruntime": "edge.inference.runtime.onnxruntime:OnnxRuntime",
    "tensorrt": "edge.inference.runtime.tensorrt:TensorRTRuntime",
    "null": "edge.inference.runtime.null:NullRuntime",  # fixed probabilities: tests and benchmarks
}
CAM_OUTPUT = "cam"  # the optional second model output: float32 [N, classes, h, w]
# convert export-onnx builds the cam so that sigmoid(mean over h, w of cam) IS the probabilities
# (checked to 1e-5 in FP32, convert.cam). FP16/INT8 engines keep the head and the cam branch in
# FP32, but both read reduced-precision features and the engine computes pool+MatMul and
# conv+mean as different kernels, so they agree less closely: 1.1e-3 was measured for the ONNX
# Runtime FP16 engine (tests/test_convert_build.py); TensorRT INT8 is not measured here (no GPU).
# A broken cam (a never-written buffer, wrong layout or class order) is off by far more than
# that; 0.02 absolute on probabilities leaves room for quantisation and still catches those.
CAM_CHECK_TOLERANCE = 0.02


@dataclass(frozen=True)
class InputSpec:
    name: str
    height: int
    width: int
    channels: int
    max_batch: int
    dtype: str = "uint8"

    @property
    def tile_shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)


class Runtime(ABC):
    """A loaded model. Use as a context manager or call `close()`: GPU memory is freed there."""

    backend: str = ""
    path: Path | None = None  # the model file, for messages
    # set by warm_up when the cam disagrees with the probabilities and was dropped
    cam_problem: str | None = None

    @property
    @abstractmethod
    def input_spec(self) -> InputSpec: ...

    @property
    @abstractmethod
    def num_outputs(self) -> int: ...

    @abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """uint8 [n, H, W, C] with 1 <= n <= max_batch -> float32 probabilities [n, K]."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    def cam_shape(self) -> tuple[int, int] | None:
        """(h, w) of the model's class activation maps, or None for a model without `cam`."""
        return None

    def infer_with_cam(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Like `infer`, plus float32 cam [n, K, h, w] (None when the model has no cam)."""
        return self.infer(batch), None

    def infer_all_with_cam(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """`infer_with_cam` over any number of tiles, in chunks of at most max_batch; the
        probabilities are checked as by `infer_all`."""
        if self.cam_shape is None:
            return self.infer_all(tiles), None
        step = self.input_spec.max_batch
        parts = []
        for i in range(0, len(tiles), step):
            chunk = tiles[i : i + step]
            probabilities, cam = self.infer_with_cam(chunk)
            parts.append((checked_probabilities(probabilities, len(chunk), self.num_outputs), cam))
        if not parts:
            return (np.zeros((0, self.num_outputs), dtype=np.float32),
                    np.zeros((0, self.num_outputs, *self.cam_shape), dtype=np.float32))
        return (np.concatenate([p for p, _ in parts]), np.concatenate([c for _, c in parts]))

    def infer_all(self, tiles: np.ndarray) -> np.ndarray:
        """Run any number of tiles in chunks of at most max_batch; outputs are checked.

        Raises ModelFault when a chunk's outputs are not finite probabilities
        (edge.inference.runtime.outputs): every caller (daemon, gate, edge check) gets checked
        outputs.
        """
        step = self.input_spec.max_batch
        outputs = [self.checked_infer(tiles[i : i + step]) for i in range(0, len(tiles), step)]
        if not outputs:
            return np.zeros((0, self.num_outputs), dtype=np.float32)
        return np.concatenate(outputs)

    def checked_infer(self, batch: np.ndarray) -> np.ndarray:
        return checked_probabilities(self.infer(batch), len(batch), self.num_outputs)

    def check_batch(self, batch: np.ndarray) -> np.ndarray:
        spec = self.input_spec
        if batch.ndim == 3 and spec.channels == 1:
            batch = batch[..., None]
        expected = (spec.height, spec.width, spec.channels)
        if batch.ndim != 4 or batch.shape[1:] != expected:
            raise ModelError(
                f"batch of shape {batch.shape} does not match the model input {expected}"
            )
        if not 1 <= len(batch) <= spec.max_batch:
            raise ModelError(f"batch of {len(batch)} tiles; this model takes 1..{spec.max_batch}")
        if batch.dtype != np.uint8:
            raise ModelError(f"batch dtype {batch.dtype}; the model takes uint8 pixels")
        return batch

    def warm_up(self) -> None:
        """One full batch of black tiles: a model that cannot run it fails here, in one line.
        A model with a cam also has it checked against its probabilities (see `_check_cam`)."""
        spec = self.input_spec
        batch = np.zeros((spec.max_batch, *spec.tile_shape), dtype=np.uint8)
        try:
            if self.cam_shape is None:
                self.checked_infer(batch)
                return
            probabilities, cam = self.infer_with_cam(batch)
            probabilities = checked_probabilities(probabilities, len(batch), self.num_outputs)
        except Exception as exc:  # backends raise their own types (ORT's Fail, CUDA errors)
            self.close()
            reason = one_line(str(exc)) or type(exc).__name__
            raise ModelError(f"{self.path}: {self.backend} warm-up failed: {reason}") from None
        self._check_cam(probabilities, cam)

    def _check_cam(self, probabilities: np.ndarray, cam: np.ndarray | None) -> None:
        """sigmoid(mean over h, w of cam) must give the probabilities (the identity convert/cam.py
        builds in). If not, the cam is dropped with one WARNING and the model runs as one
        without cam (tile-sized boxes): its probabilities are still good, inspection goes on."""
        expected = (len(probabilities), self.num_outputs, *self.cam_shape)
        if cam is None or tuple(cam.shape) != expected:
            problem = f"cam of shape {None if cam is None else tuple(cam.shape)}, not {expected}"
        else:
            logits = cam.astype(np.float64).mean(axis=(2, 3))
            with np.errstate(over="ignore"):
                from_cam = 1.0 / (1.0 + np.exp(-logits))
            difference = float(np.max(np.abs(from_cam - probabilities))) \
                if np.all(np.isfinite(from_cam)) else float("inf")
            if difference <= CAM_CHECK_TOLERANCE:
                return
            problem = (f"sigmoid(mean(cam)) differs from the probabilities by {difference:.3g} "
                       f"(tolerance {CAM_CHECK_TOLERANCE})")
        self.cam_problem = problem
        log.warning("%s: %s: the cam is dropped, defect boxes stay tile-sized; rebuild the "
                    "engine from a fresh convert export-onnx", self.path, problem)
        self._drop_cam()

    def _drop_cam(self) -> None:
        """From now on the model has no cam (cam_shape None). Backends keep it in _cam_shape."""
        self._cam_shape = None

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def one_line(text: str, limit: int = 300) -> str:
    """A backend's (often multi-line) message as one bounded line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


def load_runtime(backend: str, path: Path, **options) -> Runtime:
    """Load `path` with the named backend; options are backend-specific (max_batch, threads...)."""
    if backend not in _BACKENDS:
        raise ModelError(
            f"unknown backend {backend!r}; choose one of {', '.join(available_backends())}"
        )
    module_name, class_name = _BACKENDS[backend].split(":")
    runtime_cls = getattr(importlib.import_module(module_name), class_name)
    log.info("loading %s with backend %s", path, backend)
    return runtime_cls(Path(path), **options)
