"""The manifest PATH.json written beside every engine (read back by
`edge.inference.model`/`edge.inference.manifest`).

It embeds the model card under "card" and records what the line PC must match (backend version,
GPU), what the engine really is (effective precision, I/O dtypes) and the gate table that let it
through.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from convert.gate import GateReport
from convert.onnx_graph import TensorInfo
from edge.inference.manifest import MANIFEST_VERSION, Platform, file_sha256
from edge.inference.modelcard import ModelCard, package_versions

# what edge.inference.runtime's infer() takes, whatever the engine's input
HOST_INPUT_DTYPE = "uint8"


def build_manifest(
    *,
    card: ModelCard,
    engine_path: Path,
    onnx_path: Path,
    backend: str,
    backend_version: str,
    platform: Platform | None,
    requested_precision: str,
    effective_precision: str,
    notes: list[str],
    engine_input: TensorInfo,
    engine_output: TensorInfo,
    max_batch: int,
    opt_batch: int,
    gate: GateReport,
    calibration: dict | None = None,
    layer_precisions: dict | None = None,
) -> dict:
    host_cast = engine_input.dtype != HOST_INPUT_DTYPE
    return {
        "manifest_version": MANIFEST_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "engine_file": Path(engine_path).name,
        "engine_sha256": file_sha256(engine_path),
        "engine_bytes": Path(engine_path).stat().st_size,
        "backend": backend,
        "backend_version": backend_version,
        "gpu": platform.as_manifest()["gpu"] if platform is not None else None,
        "onnx_path": str(Path(onnx_path).resolve()),
        "onnx_sha256": file_sha256(onnx_path),
        "requested_precision": requested_precision,
        "effective_precision": effective_precision,
        "precision_notes": notes,
        # TensorRT's per-layer choice (engine inspector); None for ONNX Runtime or where absent
        "layer_precisions": layer_precisions,
        "input": {
            **engine_input.as_dict(),
            "host_dtype": HOST_INPUT_DTYPE,
            "host_cast": f"{HOST_INPUT_DTYPE} -> {engine_input.dtype}" if host_cast else None,
        },
        "output": engine_output.as_dict(),
        "max_batch": max_batch,
        "opt_batch": opt_batch,
        "classes": card.class_names,
        "thresholds": list(card.thresholds),
        "calibration": calibration,
        "gate": gate.to_dict(),
        "software": package_versions("steel-inspect", "onnx", "onnxruntime",
                                     "onnxconverter-common", "tensorrt", "pycuda"),
        "card": card.model_dump(mode="json"),
    }


def write_manifest(path: Path, manifest: dict) -> None:
    Path(path).write_text(json.dumps(manifest, indent=2) + "\n")
