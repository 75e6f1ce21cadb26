"""ONNX Runtime backend: CPU line PCs, and how the whole product is tested without a GPU."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edge.errors import ModelError
from edge.inference.runtime.base import CAM_OUTPUT, InputSpec, Runtime

log = logging.getLogger(__name__)


class OnnxRuntime(Runtime):
    backend = "onnxruntime"

    def __init__(
        self, path: Path, max_batch: int = 16, threads: int = 0, warm_up: bool = True
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelError(
                f"onnxruntime is not installed ({exc}); install the 'edge' extra"
            ) from None
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"{path}: ONNX model not found")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise ModelError(f"{path}: ONNX Runtime cannot load the model: {exc}") from None
        self._spec, self._num_outputs = _read_spec(self._session, path, max_batch)
        self._output_name = self._session.get_outputs()[0].name
        self._cam_shape = _cam_shape(self._session, path, self._num_outputs)
        if warm_up:
            self.warm_up()

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    @property
    def num_outputs(self) -> int:
        return self._num_outputs

    def infer(self, batch: np.ndarray) -> np.ndarray:
        batch = self.check_batch(batch)
        (probabilities,) = self._session.run(
            [self._output_name], {self._spec.name: np.ascontiguousarray(batch)}
        )
        return probabilities.astype(np.float32, copy=False)

    @property
    def cam_shape(self) -> tuple[int, int] | None:
        return self._cam_shape

    def infer_with_cam(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self._cam_shape is None:
            return self.infer(batch), None
        batch = self.check_batch(batch)
        probabilities, cam = self._session.run(
            [self._output_name, CAM_OUTPUT], {self._spec.name: np.ascontiguousarray(batch)}
        )
        return probabilities.astype(np.float32, copy=False), cam.astype(np.float32, copy=False)

    def close(self) -> None:
        self._session = None


def _read_spec(session, path: Path, max_batch: int) -> tuple[InputSpec, int]:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) not in (1, 2):
        raise ModelError(
            f"{path}: expected 1 input and 1 output (+ {CAM_OUTPUT!r}), found {len(inputs)} "
            f"and {len(outputs)}"
        )
    shape = inputs[0].shape
    if len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]):
        raise ModelError(f"{path}: input {inputs[0].name} has shape {shape}; expected [N, H, W, C]")
    if inputs[0].type != "tensor(uint8)":
        raise ModelError(f"{path}: input {inputs[0].name} is {inputs[0].type}; expected uint8")
    if isinstance(shape[0], int):
        max_batch = min(max_batch, shape[0])
    out_shape = outputs[0].shape
    if len(out_shape) != 2 or not isinstance(out_shape[1], int):
        raise ModelError(f"{path}: output shape {out_shape}; expected [N, classes]")
    spec = InputSpec(
        name=inputs[0].name, height=shape[1], width=shape[2], channels=shape[3], max_batch=max_batch
    )
    return spec, out_shape[1]


def _cam_shape(session, path: Path, classes: int) -> tuple[int, int] | None:
    """(h, w) of the `cam` output [N, classes, h, w], None when the model has only one output."""
    outputs = session.get_outputs()
    if len(outputs) == 1:
        return None
    cam = outputs[1]
    shape = cam.shape
    if (cam.name != CAM_OUTPUT or cam.type != "tensor(float)" or len(shape) != 4
            or shape[1] != classes or not all(isinstance(d, int) for d in shape[2:])):
        raise ModelError(f"{path}: second output {cam.name} {cam.type} {shape}; expected "
                         f"{CAM_OUTPUT!r} float32 [N, {classes}, h, w]")
    return int(shape[2]), int(shape[3])
