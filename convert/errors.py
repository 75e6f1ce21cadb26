"""Errors of the conversion stage (all one-line, all `SteelInspectError`s)."""

from edge.errors import ModelError, SteelInspectError


class ExportError(ModelError):
    """The Keras model cannot be exported, or the ONNX does not match it numerically."""


class EngineBuildError(ModelError):
    """The engine cannot be built (parser, GPU, precision, calibration)."""


class TensorRTUnavailable(EngineBuildError):
    """`tensorrt`/`pycuda` cannot be imported, or there is no usable GPU."""


class GateFailed(SteelInspectError):
    """The candidate engine lost more F1 than allowed; it was moved to PATH.rejected."""

    exit_code = 3
