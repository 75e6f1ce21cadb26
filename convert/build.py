"""`convert build-engine`: build a candidate, gate it, and write PATH + PATH.json or reject it.

The candidate is built at PATH.building; it becomes PATH (with its manifest PATH.json) only if
the gate passes. A rejected candidate goes to PATH.rejected (+ PATH.rejected.json) and nothing
is left at PATH, not even an engine an earlier build put there.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convert import ort_engine
from convert.errors import GateFailed
from convert.gate import GateReport, eval_settings, run_gate
from convert.gateset import FolderGateSet
from convert.manifest import build_manifest, write_manifest
from convert.onnx_graph import (
    check_contract,
    float_input_variant,
    graph_inputs,
    graph_outputs,
    load_onnx,
)
from convert.tiles import calibration_tiles, open_run_data, tiles_sha256
from convert.trt86 import blocking, check_tensorrt86
from edge.errors import ModelError
from edge.inference.cpuflags import cpu_flags, int8_reduce_range
from edge.inference.manifest import file_sha256, manifest_path
from edge.inference.modelcard import MODELCARD_FILE, ModelCard
from edge.inference.runtime import load_runtime
from edge.inference.runtime.base import CAM_OUTPUT
from edge.inference.tiling import tile_boxes
from train import rundir

log = logging.getLogger(__name__)

TILES_PER_FRAME = len(tile_boxes(256, 1600))  # a Severstal 1600x256 frame: 7 tiles
# INT8 calibration images (7 tiles each) of the training split. On the demo model (scripts/demo),
# ONNX Runtime INT8 with 64 was refused by the gate (2 frames flipped for scratches) and passed
# with 128 (docs/convert.md).
DEFAULT_CALIB_IMAGES = 128


@dataclass
class BuildOptions:
    run: Path
    out: Path
    precision: str = "fp16"
    backend: str = "tensorrt"
    max_batch: int = 8
    calib_images: int = DEFAULT_CALIB_IMAGES
    max_f1_drop: float = 0.01
    data: Path | None = None
    threads: int = 0
    workspace_mib: int = 1024
    timing_cache: Path | None = None
    onnx_row: bool = True
    verbose: bool = False


@dataclass
class Candidate:
    path: Path
    backend_version: str
    platform: object  # edge.inference.manifest.Platform for TensorRT, None for ONNX Runtime
    effective_precision: str
    notes: list[str]
    engine_input: object  # convert.onnx_graph.TensorInfo
    engine_output: object
    calibration: dict | None
    layer_precisions: dict | None = None


@dataclass
class BuildOutcome:
    path: Path  # PATH, or PATH.rejected
    manifest: dict
    report: GateReport

    @property
    def passed(self) -> bool:
        return self.report.passed


def rejected_path(out: Path) -> Path:
    return out.with_name(out.name + ".rejected")


SMALL_CALIBRATION_TILES = 200  # a warning threshold (about 30 frames), not a measured limit


def calibration_set(folder, splits, requested: int, tile: int = 256) -> tuple[np.ndarray, int]:
    """The tiles (`tile` px: the card's input size) of `requested` training images
    (TILES_PER_FRAME each) and how many images there really were (a smaller training split gives
    fewer, with a warning)."""
    tiles = calibration_tiles(folder, splits, requested * TILES_PER_FRAME, tile=tile)
    images = min(requested, len(splits.get("train") or []))
    if images < requested:
        log.warning("INT8 calibration: %d images requested, but the training split has only %d "
                    "images; calibrating on %d", requested, images, images)
    return tiles, images


def _calibration(opts: BuildOptions, folder, splits, onnx_sha: str,
                 tile: int = 256) -> tuple[np.ndarray, dict]:
    tiles, images = calibration_set(folder, splits, opts.calib_images, tile)
    return tiles, calibration_record(opts, tiles, images, onnx_sha)


def calibration_record(opts: BuildOptions, tiles: np.ndarray, images: int, onnx_sha: str) -> dict:
    """What the manifest records of the calibration set (and warns when it is small)."""
    if len(tiles) < SMALL_CALIBRATION_TILES:
        log.warning("INT8 calibration on only %d tiles (%d images): activation ranges may be "
                    "off and the gate may refuse; use at least %d tiles", len(tiles), images,
                    SMALL_CALIBRATION_TILES)
    data_sha = tiles_sha256(tiles)
    cache = opts.out.parent / f".calibration-{opts.backend}-{onnx_sha[:16]}-{data_sha[:16]}.cache"
    return {"split": "train", "requested_images": opts.calib_images, "images": images,
            "tiles": int(len(tiles)), "data_sha256": data_sha, "cache": str(cache)}


def _build_onnxruntime(opts, onnx_path: Path, staging: Path, calib) -> Candidate:
    import onnxruntime  # noqa: PLC0415

    notes = []
    if opts.precision == "fp32":
        ort_engine.build_fp32(onnx_path, staging)
    elif opts.precision == "fp16":
        ort_engine.build_fp16(onnx_path, staging)
    else:
        tiles, info = calib
        reduce_range, why = int8_reduce_range(cpu_flags())
        info["reduce_range"], info["reduce_range_reason"] = reduce_range, why
        notes.append(why)
        ort_engine.build_int8(onnx_path, staging, tiles, Path(info["cache"]), reduce_range)
    model = load_onnx(staging)
    return Candidate(staging, onnxruntime.__version__, None, opts.precision, notes,
                     graph_inputs(model)[0], graph_outputs(model)[0],
                     calib[1] if calib else None)


def _build_tensorrt(opts, onnx_path: Path, staging: Path, calib) -> Candidate:
    from convert.tensorrt.builder import build_engine  # noqa: PLC0415

    variant = float_input_variant(load_onnx(onnx_path))
    for finding in blocking(check_tensorrt86(variant)):
        log.warning("TensorRT 8.6 %s", finding)
    result = build_engine(
        variant, opts.precision, opts.max_batch, TILES_PER_FRAME,
        workspace_mib=opts.workspace_mib,
        timing_cache=opts.timing_cache or opts.out.parent / ".tensorrt-timing.cache",
        calibration_tiles=calib[0] if calib else None,
        calibration_cache=Path(calib[1]["cache"]) if calib else None,
        verbose=opts.verbose,
    )
    staging.write_bytes(result.engine)
    return Candidate(staging, result.platform.tensorrt_version, result.platform,
                     result.effective_precision, result.notes, graph_inputs(variant)[0],
                     graph_outputs(variant)[0],
                     calib[1] if calib and result.effective_precision == "int8" else None,
                     result.layer_precisions)


def _gate(opts, card, gate_set, candidate: Candidate, onnx_path: Path) -> GateReport:
    label = f"{opts.backend} {candidate.effective_precision}"
    runtime = load_runtime(opts.backend, candidate.path, max_batch=opts.max_batch,
                           threads=opts.threads)
    try:
        same_as_onnx = opts.backend == "onnxruntime" and opts.precision == "fp32"
        if same_as_onnx or not opts.onnx_row:
            return run_gate(card, gate_set, runtime.infer_all, label, opts.max_f1_drop)
        with load_runtime("onnxruntime", onnx_path, max_batch=opts.max_batch,
                          threads=opts.threads) as reference:
            return run_gate(card, gate_set, runtime.infer_all, label, opts.max_f1_drop,
                            onnx_fp32=reference.infer_all)
    finally:
        runtime.close()


def _remove(path: Path) -> None:
    if path.exists():
        log.warning("removing %s", path)
        path.unlink()


def _publish(staging: Path, target: Path, manifest: dict) -> None:
    os.replace(staging, target)
    write_manifest(manifest_path(target), manifest)


def build_and_gate(opts: BuildOptions) -> BuildOutcome:
    """Build, gate, and publish at opts.out (pass) or opts.out.rejected (fail)."""
    run, out = Path(opts.run), Path(opts.out)
    if opts.backend == "tensorrt":
        from convert.tensorrt import require_tensorrt  # noqa: PLC0415

        require_tensorrt()  # the install hint before any work
    if not run.is_dir():
        raise ModelError(f"{run}: run folder not found")
    card = ModelCard.load(run / MODELCARD_FILE)
    onnx_path = run / rundir.ONNX_FILE
    check_contract(load_onnx(onnx_path), card, onnx_path)  # before any work: the right model?
    if out.is_dir():
        raise ModelError(f"{out}: --out is a folder; give the engine's file name")
    _refuse_run_file(out, run)
    out.parent.mkdir(parents=True, exist_ok=True)
    folder, splits = open_run_data(card, run, opts.data)
    calib = None
    if opts.precision == "int8":
        calib = _calibration(opts, folder, splits, file_sha256(onnx_path), card.input.height)
    gate_set = FolderGateSet(folder, splits, eval_settings(card))
    return build_gate_publish(opts, card, onnx_path, gate_set, calib)


def build_gate_publish(opts: BuildOptions, card: ModelCard, onnx_path: Path, gate_set,
                       calib: tuple[np.ndarray, dict] | None) -> BuildOutcome:
    """Build the candidate from `onnx_path`, gate it on `gate_set` (convert.gateset), publish.

    `calib`: (training-split tiles, their calibration record) for INT8, else None.
    """
    out = Path(opts.out)
    staging = out.with_name(out.name + ".building")
    try:
        builder = _build_tensorrt if opts.backend == "tensorrt" else _build_onnxruntime
        candidate = builder(opts, onnx_path, staging, calib)
        report = _gate(opts, card, gate_set, candidate, onnx_path)
        manifest = build_manifest(
            card=card, engine_path=staging, onnx_path=onnx_path, backend=opts.backend,
            backend_version=candidate.backend_version, platform=candidate.platform,
            requested_precision=opts.precision, effective_precision=candidate.effective_precision,
            layer_precisions=candidate.layer_precisions,
            notes=candidate.notes, engine_input=candidate.engine_input,
            engine_output=candidate.engine_output, max_batch=opts.max_batch,
            opt_batch=min(TILES_PER_FRAME, opts.max_batch), gate=report,
            calibration=candidate.calibration,
        )
        manifest["engine_file"] = out.name
        manifest["cam"] = cam_manifest(candidate.path, opts.backend, onnx_path)
        target = out if report.passed else rejected_path(out)
        other = rejected_path(out) if report.passed else out
        _remove(other)
        _remove(manifest_path(other))
        _publish(staging, target, manifest)
    finally:
        if staging.exists():
            staging.unlink()
    return BuildOutcome(target, manifest, report)


def _refuse_run_file(out: Path, run: Path) -> None:
    """--out (or its manifest) must not replace a file of the run it is built from."""
    sources = {(run / name).resolve(): name for name in (
        rundir.ONNX_FILE, rundir.MODEL_FILE, MODELCARD_FILE, rundir.SPLITS_FILE)}
    for written in (out, manifest_path(out)):
        name = sources.get(written.resolve())
        if name is not None:
            raise ModelError(
                f"{out}: --out would overwrite the run's {name}; give another file, "
                f"e.g. {run / 'engines' / 'model-fp32.onnx'}"
            )


def cam_manifest(engine: Path, backend: str, onnx_path: Path) -> dict | None:
    """The engine's `cam` output (edge.inference.runtime.base.CAM_OUTPUT) as the ONNX declares it,
    or None
    for a model exported without it; engines keep it in FP32 like the head."""
    outputs = graph_outputs(load_onnx(engine if backend == "onnxruntime" else onnx_path))
    cam = next((o for o in outputs if o.name == CAM_OUTPUT), None)
    return None if cam is None else {**cam.as_dict(), "precision": "fp32"}


def raise_if_failed(outcome: BuildOutcome) -> None:
    if outcome.passed:
        return
    report = outcome.report
    raise GateFailed(
        f"gate failed for {', '.join(report.failing_columns())} (max F1 drop "
        f"{report.max_drop:g}): {'; '.join(str(f) for f in report.failures)}; "
        f"candidate kept as {outcome.path}"
    )
