"""ONNX Runtime backend: CPU line PCs, and how the whole product is tested without a GPU."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edge.errors import ModelError
from edge.runtime.base import InputSpec, Runtime

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

    def close(self) -> None:
        self._session = None


def _read_spec(session, path: Path, max_batch: int) -> tuple[InputSpec, int]:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(
            f"{path}: expected 1 input and 1 output, found {len(inputs)} and {len(outputs)}"
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
