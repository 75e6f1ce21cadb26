"""The one check of every runtime's outputs: finite probabilities in the model's declared range.

Every model card declares sigmoid outputs, i.e. probabilities in [0, 1]. A runtime that returns
NaN, +-inf or values outside that range (a broken export, an engine built wrong, a GPU fault) has
not inspected the tiles; `Runtime.infer_all` raises `ModelFault` for such a batch so the frame is
counted as a model fault instead of being read as "no defects" or published as `Infinity`.
"""

from __future__ import annotations

import numpy as np

from edge.errors import ModelFault

PROBABILITY_RANGE = (0.0, 1.0)
# reduced-precision engines may round a saturated sigmoid a hair past its limit; such values are
# clipped, anything further out is a fault
_ROUNDING_SLACK = 1e-5


def checked_probabilities(outputs: np.ndarray, tiles: int, classes: int) -> np.ndarray:
    """`outputs` as float32 [tiles, classes] in [0, 1]; ModelFault (one line) if they cannot be."""
    outputs = np.asarray(outputs)
    if outputs.shape != (tiles, classes):
        raise ModelFault(
            f"model output has shape {outputs.shape}; expected ({tiles}, {classes})"
        )
    outputs = outputs.astype(np.float32, copy=False)
    low, high = PROBABILITY_RANGE
    if outputs.size and outputs.min() >= low and outputs.max() <= high:  # NaN fails both
        return outputs  # the usual case, in two passes instead of six
    finite = np.isfinite(outputs)
    inside = finite & (outputs >= low - _ROUNDING_SLACK) & (outputs <= high + _ROUNDING_SLACK)
    if not inside.all():
        raise ModelFault(describe_invalid(outputs, finite, inside))
    if outputs.min(initial=low) < low or outputs.max(initial=high) > high:
        outputs = np.clip(outputs, low, high)
    return outputs


def describe_invalid(outputs: np.ndarray, finite: np.ndarray, inside: np.ndarray) -> str:
    nan = int(np.isnan(outputs).sum())
    inf = int(np.isinf(outputs).sum())
    out_of_range = int((finite & ~inside).sum())
    parts = [f"{count} {what}" for count, what in
             ((nan, "NaN"), (inf, "infinite"), (out_of_range, "outside [0, 1]")) if count]
    example = ""
    if out_of_range:
        example = f", e.g. {float(outputs[finite & ~inside][0]):.6g}"
    return (f"model output invalid: {', '.join(parts)} of {outputs.size} values "
            f"({outputs.shape[0]} tiles){example}")
