"""`convert package`: one file with everything a line PC needs to build, gate and run a model.

The format (members, index, validation) is described in `edge.inference.package`, which reads it;
this module writes it. The gate set is cut from the run's data folder exactly as the gate cuts it
(`convert.gateset.gate_arrays`), the calibration tiles come from the training split only
(`convert.tiles.calibration_tiles`). Members are written with fixed owners, modes and times.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convert.build import DEFAULT_CALIB_IMAGES, calibration_set
from convert.gate import eval_settings, reference_rows
from convert.gateset import gate_arrays
from convert.onnx_graph import check_contract, graph_outputs, load_onnx
from convert.tiles import open_run_data, tiles_sha256
from edge.errors import ModelError
from edge.inference.manifest import file_sha256
from edge.inference.modelcard import MODELCARD_FILE, ModelCard, package_versions
from edge.inference.package import (
    CALIBRATION_MEMBER,
    FORMAT,
    FORMAT_VERSION,
    GATE_MEMBER,
    INDEX,
    ONNX_MEMBER,
    open_package,
)
from edge.inference.runtime.base import CAM_OUTPUT
from train import rundir

log = logging.getLogger(__name__)



@dataclass
class PackageResult:
    path: Path
    digest: str
    version: str
    index: dict


def write_package(run: Path, out: Path, data: Path | None = None,
                  calib_images: int = DEFAULT_CALIB_IMAGES) -> PackageResult:
    run, out = Path(run), Path(out)
    if not run.is_dir():
        raise ModelError(f"{run}: run folder not found")
    if out.is_dir():
        raise ModelError(f"{out}: --out is a folder; give the package's file name (NAME.sipkg)")
    card = ModelCard.load(run / MODELCARD_FILE)
    onnx_path = run / rundir.ONNX_FILE
    if not onnx_path.is_file():
        raise ModelError(f"{onnx_path}: not found; run convert export-onnx --run {run} first")
    model = load_onnx(onnx_path)
    check_contract(model, card, onnx_path)
    reference_rows(card)  # the card must carry the Keras test F1 the line PC gates against
    settings = eval_settings(card)
    folder, splits = open_run_data(card, run, data)
    gate = gate_arrays(folder, splits, settings)
    calib, images = calibration_set(folder, splits, calib_images, card.input.height)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".package-", dir=out.parent) as tmp:
        members = _write_members(Path(tmp), onnx_path, run / MODELCARD_FILE, gate, calib)
        index = _index(card, model, onnx_path, gate, settings, calib, images, calib_images,
                       members)
        raw = (json.dumps(index, indent=2, sort_keys=True) + "\n").encode()
        partial = Path(tmp) / "package.partial"
        _write_tar(partial, raw, members)
        os.replace(partial, out)
    package = open_package(out)  # what the line PC will check, checked once here
    return PackageResult(out, package.digest, package.version, index)


def _write_members(folder: Path, onnx_path: Path, card_path: Path, gate: dict,
                   calib: np.ndarray) -> dict[str, Path]:
    np.savez_compressed(folder / GATE_MEMBER, **gate)
    np.savez_compressed(folder / CALIBRATION_MEMBER, tiles=calib)
    return {ONNX_MEMBER: onnx_path, MODELCARD_FILE: card_path,
            GATE_MEMBER: folder / GATE_MEMBER, CALIBRATION_MEMBER: folder / CALIBRATION_MEMBER}


def _index(card, model, onnx_path, gate, settings, calib, images, requested, members) -> dict:
    outputs = [o.name for o in graph_outputs(model)]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {"name": card.name, "version": card.version, "arch": card.arch,
                  "classes": card.class_names, "outputs": outputs,
                  "cam": CAM_OUTPUT in outputs},
        "gate_set": {
            "split": "test", "settings": settings.to_dict(),
            "crops": int(len(gate["test_crops_tiles"])),
            "frames": int(len(gate["test_frames_counts"])),
            "frame_tiles": int(len(gate["test_frames_tiles"])),
            "validation_crops": int(len(gate["validation_crops_tiles"])),
        },
        "calibration": {"split": "train", "requested_images": requested, "images": images,
                        "tiles": int(len(calib)), "data_sha256": tiles_sha256(calib)},
        "members": {name: {"sha256": file_sha256(path), "bytes": path.stat().st_size}
                    for name, path in members.items()},
        "software": package_versions("steel-inspect", "onnx", "onnxruntime", "tf2onnx",
                                     "numpy"),
    }


def _write_tar(path: Path, index: bytes, members: dict[str, Path]) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info(INDEX, len(index)), io.BytesIO(index))
        for name, source in members.items():
            with open(source, "rb") as stream:
                tar.addfile(_info(name, source.stat().st_size), stream)


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
