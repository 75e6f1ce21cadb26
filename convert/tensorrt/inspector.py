"""What precision TensorRT really chose per layer, from the engine inspector.

The builder flags only allow precisions; TensorRT picks per layer. The engine is built with
detailed profiling verbosity (TensorRT 8.2+), so the inspector's JSON lists each layer with the
format and data type of its outputs ("Row major linear FP32", "Channel major FP16 format ...",
"Row major Int8 format"); that is what the manifest records.
"""

from __future__ import annotations

import json
import logging
from collections import Counter

log = logging.getLogger(__name__)

# first match wins: "Int8" before "FP16"/"Half" before "FP32"/"Float"
PRECISION_WORDS = (("int8", ("int8",)), ("fp16", ("fp16", "half")), ("fp32", ("fp32", "float")))
SOURCE = "TensorRT engine inspector (data type of each layer's outputs)"


def layer_precisions(trt, plan: bytes, logger) -> dict | None:
    """{"source", "counts", "layers"} for a serialised engine; None where not available (the
    inspector is optional to the build: a failure here is logged, never fatal)."""
    try:
        engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
        if engine is None:
            return None
        inspector = engine.create_engine_inspector()
        info = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
        return summarise_layers(json.loads(info))
    except Exception as exc:  # noqa: BLE001 - an optional record must not fail a good build
        log.warning("per-layer precisions not recorded: engine inspector failed (%s)", exc)
        return None


def summarise_layers(info: dict) -> dict | None:
    """The inspector's JSON -> precision per layer name and counts; None when the engine was
    not built with detailed verbosity (layers are then bare names)."""
    layers = {}
    for layer in info.get("Layers", []):
        if not isinstance(layer, dict):
            return None
        text = " ".join(str(o.get("Format/Datatype", "")) for o in layer.get("Outputs", []))
        text = text.lower()
        layers[str(layer.get("Name", "?"))] = next(
            (p for p, words in PRECISION_WORDS if any(w in text for w in words)), "other"
        )
    if not layers:
        return None
    return {"source": SOURCE, "counts": dict(sorted(Counter(layers.values()).items())),
            "layers": layers}
