"""`convert export-onnx`: RUN_DIR/model.keras -> RUN_DIR/model.onnx, checked numerically.

Route (the leanest of those measured, docs/performance.md "ONNX export"): a child process loads
the Keras model, writes its probabilities on the parity tiles and exports a SavedModel; a second
child runs the tf2onnx command line on it. This process never imports TensorFlow, so the peak
memory is that of the larger child. The ONNX is accepted only if ONNX Runtime reproduces the
Keras probabilities on real tiles within `PARITY_TOLERANCE`, and its second output `cam` (the
class activation maps, `convert.cam`) averages back to those probabilities within
`CAM_IDENTITY_TOLERANCE`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from convert.cam import CAM_IDENTITY_TOLERANCE, add_cam_output, sigmoid_of_mean
from convert.errors import ExportError
from convert.onnx_graph import check_contract, name_unnamed_nodes, normalise_after_layout
from convert.tiles import parity_tiles
from convert.trt86 import Finding, check_tensorrt86
from edge.errors import ModelError
from edge.inference.modelcard import MODELCARD_FILE, ModelCard
from edge.inference.runtime import load_runtime
from train import rundir
from train.progress import REDRAW_INTERVAL_S, Progress

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
PARITY_TOLERANCE = 1e-4
PARITY_TILES = 32
PARITY_BATCH = 8
EXPORT_STEPS = 4  # Keras + SavedModel, tf2onnx, graph passes, parity
BATCH_DIM = "N"


@dataclass
class ExportResult:
    path: Path
    max_abs_diff: float
    tiles: int
    tiles_source: str
    findings: list[Finding] = field(default_factory=list)
    cam_shape: tuple[int, int] | None = None
    cam_max_abs_diff: float | None = None  # |sigmoid(mean(cam)) - probabilities|, max


def run_child(command: list[str], log_path: Path, what: str, threads: int) -> None:
    """Run a child process; on failure raise ExportError with its last error line."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    if threads:
        for name in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
            env[name] = str(threads)
        env["TF_NUM_INTEROP_THREADS"] = "1"
    log.info("%s: %s", what, " ".join(command[1:]))
    with open(log_path, "w") as out, Progress(None, what) as progress:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        code = wait_with_progress(child, progress)
    if code != 0:
        raise ExportError(f"{what} failed (exit {code}): {last_error_line(log_path)}")


def wait_with_progress(child: subprocess.Popen, progress: Progress) -> int:
    """Wait for the child, showing its elapsed time (its duration cannot be known ahead)."""
    try:
        while True:
            try:
                return child.wait(timeout=REDRAW_INTERVAL_S)
            except subprocess.TimeoutExpired:
                progress.tick()
    except BaseException:  # Ctrl-C or an error here: never leave the child running
        child.kill()
        child.wait()
        raise


def last_error_line(log_path: Path) -> str:
    lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    for line in reversed(lines):
        if "Error" in line or "ERROR" in line:
            return line[-300:]
    return lines[-1][-300:] if lines else "no output"


def convert_saved_model(saved_dir: Path, onnx_path: Path, card: ModelCard, opset: int,
                        work: Path, threads: int) -> None:
    command = [
        sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved_dir),
        "--opset", str(opset), "--output", str(onnx_path),
        "--rename-inputs", card.input.name, "--rename-outputs", card.output.name,
    ]
    run_child(command, work / "tf2onnx.log", step(2, "tf2onnx"), threads)


def step(number: int, what: str) -> str:
    return f"export step {number} of {EXPORT_STEPS}: {what}"


def finish_graph(path: Path, card: ModelCard) -> onnx.ModelProto:
    """Check the contract (one uint8 NHWC input, one FP32 [N, C] output), name the batch axis;
    saves the result to `path` and returns it."""
    model = onnx.load(str(path))
    check_contract(model, card, "exported ONNX")
    height, width = add_cam_output(model)
    log.info("added the %dx%d class activation map output 'cam'", height, width)
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM
    moved = normalise_after_layout(model)
    if moved:
        log.info("moved %d pixel normalisation(s) after the NHWC -> NCHW layout op", moved)
    name_unnamed_nodes(model)
    # tf2onnx's doc strings name its random temp folder: without this, two exports of one model
    # differ in sha256 and every engine built from the first looks stale
    model.doc_string = f"{card.name} {card.version}, exported by steel-inspect convert"
    model.graph.doc_string = ""
    onnx.helper.set_model_props(model, {"steel_inspect.model": card.name,
                                        "steel_inspect.version": card.version})
    onnx.save(model, str(path))
    return model


def onnx_probabilities(path: Path, tiles: np.ndarray, threads: int) -> np.ndarray:
    return onnx_outputs(path, tiles, threads)[0]


def onnx_outputs(path: Path, tiles: np.ndarray, threads: int):
    """(probabilities, cam or None) of the ONNX on `tiles`, through the edge runtime."""
    parts = []
    with (load_runtime("onnxruntime", path, max_batch=PARITY_BATCH, threads=threads,
                       warm_up=False) as rt,
          Progress(len(tiles), "parity check: ONNX Runtime") as progress):
        if not len(tiles):
            return rt.infer_all_with_cam(tiles)
        for start in range(0, len(tiles), PARITY_BATCH):
            parts.append(rt.infer_all_with_cam(tiles[start : start + PARITY_BATCH]))
            progress.update(len(parts[-1][0]))
    probabilities = np.concatenate([p for p, _ in parts])
    cams = [c for _, c in parts]
    return probabilities, None if cams[0] is None else np.concatenate(cams)


def check_parity(
    candidate: Path, tiles: np.ndarray, reference: np.ndarray, source: str, rejected: Path,
    threads: int = 0,
) -> tuple[float, float | None]:
    """Max abs probability difference ONNX Runtime vs Keras, and max abs difference between
    sigmoid(mean(cam)) and the probabilities (None without cam); over a limit, the candidate is
    moved to `rejected` and ExportError names the difference."""
    probabilities, cam = onnx_outputs(candidate, tiles, threads)
    diff = float(np.max(np.abs(probabilities - reference)))
    if not diff <= PARITY_TOLERANCE:  # also catches NaN
        os.replace(candidate, rejected)
        raise ExportError(
            f"ONNX Runtime differs from Keras by {diff:.3g} (max abs probability, > "
            f"{PARITY_TOLERANCE:g}) on {len(tiles)} {source}; kept as {rejected}"
        )
    if cam is None:
        return diff, None
    cam_diff = float(np.max(np.abs(sigmoid_of_mean(cam) - probabilities)))
    if not cam_diff <= CAM_IDENTITY_TOLERANCE:
        os.replace(candidate, rejected)
        raise ExportError(
            f"sigmoid(mean(cam)) differs from the probabilities by {cam_diff:.3g} (> "
            f"{CAM_IDENTITY_TOLERANCE:g}) on {len(tiles)} {source}; kept as {rejected}"
        )
    return diff, cam_diff


def export_onnx(
    run_dir: Path,
    opset: int = DEFAULT_OPSET,
    data_dir: Path | None = None,
    tiles: int = PARITY_TILES,
    threads: int = 0,
) -> ExportResult:
    """Export RUN_DIR/model.keras to RUN_DIR/model.onnx; raise ExportError unless it is exact."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ModelError(f"{run_dir}: run folder not found")
    card = ModelCard.load(run_dir / MODELCARD_FILE)
    keras_path = run_dir / rundir.MODEL_FILE
    if not keras_path.is_file():
        raise ModelError(f"{keras_path}: Keras model not found")
    parity, source = parity_tiles(card, run_dir, tiles, data_dir)
    target = run_dir / rundir.ONNX_FILE
    rejected = target.with_name(target.name + ".rejected")
    with tempfile.TemporaryDirectory(prefix=".export-", dir=run_dir) as tmp:
        work = Path(tmp)
        np.save(work / "tiles.npy", parity)
        worker = [sys.executable, "-m", "convert.export_worker", str(keras_path),
                  str(work / "saved_model"), str(work / "tiles.npy"), str(work / "keras.npy")]
        run_child(worker, work / "worker.log",
                  step(1, "Keras model load and SavedModel export"), threads)
        candidate = work / rundir.ONNX_FILE
        convert_saved_model(work / "saved_model", candidate, card, opset, work, threads)
        log.info("%s", step(3, "graph passes (cam output, layout, names)"))
        model = finish_graph(candidate, card)
        height, width = _cam_size(model)
        reference = np.load(work / "keras.npy")
        log.info("%s", step(4, f"parity check on {len(parity)} tiles"))
        diff, cam_diff = check_parity(candidate, parity, reference, source, rejected, threads)
        os.replace(candidate, target)
    if rejected.exists():
        rejected.unlink()  # from an earlier failed export
    findings = check_tensorrt86(model)
    log.info("wrote %s: max abs difference to Keras %.2g on %d %s; sigmoid(mean(cam)) within "
             "%.2g", target, diff, len(parity), source, cam_diff)
    return ExportResult(target, diff, len(parity), source, findings, (height, width), cam_diff)


def _cam_size(model: onnx.ModelProto) -> tuple[int, int]:
    cam = model.graph.output[1].type.tensor_type.shape.dim
    return cam[2].dim_value, cam[3].dim_value
