"""Build a TensorRT engine from the float32-input variant of the exported ONNX.

`EngineBuilder` is a short sequence of steps: parse -> profile -> precision (+ calibrator) ->
build. It raises `EngineBuildError` with one-line messages instead of exiting, and frees builder,
network, parser and calibrator GPU memory in `close()`. `build_engine` runs the whole sequence.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from convert.errors import EngineBuildError, TensorRTUnavailable
from convert.onnx_graph import CAM_PREFIX
from convert.tensorrt import require_tensorrt
from convert.tensorrt.inspector import layer_precisions
from convert.tensorrt.progress import make_progress_monitor
from edge.archive.files import write_atomic
from edge.errors import ModelError
from edge.inference.manifest import Platform, capability_problem, probe_platform
from edge.inference.runtime.base import CAM_OUTPUT
from edge.inference.runtime.tensorrt import tensorrt_object

log = logging.getLogger(__name__)

OOM_PATTERN = re.compile(r"out of memory|outofmemory|cudaErrorMemoryAllocation|insufficient "
                         r"(device )?memory", re.IGNORECASE)
HEAD_LAYER_TYPES = ("MATRIX_MULTIPLY", "FULLY_CONNECTED", "ACTIVATION", "ELEMENTWISE", "SHUFFLE",
                    "IDENTITY", "CAST")
MATMUL_LAYER_TYPES = ("MATRIX_MULTIPLY", "FULLY_CONNECTED")


@dataclass
class EngineBuildResult:
    engine: bytes
    platform: Platform
    effective_precision: str
    notes: list[str]
    layer_precisions: dict | None = None  # what TensorRT chose per layer (engine inspector)


@contextmanager
def primary_context(cuda, device: int = 0):
    """The GPU's primary CUDA context (the one TensorRT itself uses), current for the block."""
    cuda.init()
    context = cuda.Device(device).retain_primary_context()
    context.push()
    try:
        yield context
    finally:
        cuda.Context.pop()
        context.detach()


def _make_logger(trt, verbose: bool):
    class CapturingLogger(trt.ILogger):
        """Forwards TensorRT messages to `logging` and keeps the errors for the exception."""

        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg) -> None:
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                self.errors.append(msg)
                log.error("TensorRT: %s", msg)
            elif severity == trt.ILogger.Severity.WARNING:
                log.warning("TensorRT: %s", msg)
            elif verbose:
                log.debug("TensorRT: %s", msg)

    return CapturingLogger()


class EngineBuilder:
    def __init__(self, workspace_mib: int = 1024, verbose: bool = False, device: int = 0) -> None:
        self.trt, self.cuda = require_tensorrt()
        try:
            self.platform = probe_platform(device)
        except ModelError as exc:
            raise TensorRTUnavailable(str(exc)) from None
        problem = capability_problem(self.platform.tensorrt_version,
                                     self.platform.compute_capability)
        if problem:
            raise EngineBuildError(f"{self.platform.gpu_name}: {problem}")
        trt = self.trt
        self.logger = _make_logger(trt, verbose)
        self.builder = tensorrt_object(trt.Builder, "builder", self.logger, error=EngineBuildError)
        self.config = tensorrt_object(self.builder.create_builder_config, "builder config",
                                      error=EngineBuildError)
        self.config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
        if hasattr(trt, "ProfilingVerbosity"):  # the engine inspector then lists layer precisions
            self.config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
        # TensorRT keeps only a pointer: the monitor must outlive the build (see close()).
        self.progress_monitor = None
        if hasattr(self.config, "progress_monitor"):  # TensorRT 10+
            self.progress_monitor = make_progress_monitor(trt)
            self.config.progress_monitor = self.progress_monitor
        self.network = self.parser = self.calibrator = None
        self.notes: list[str] = []

    def parse(self, model: onnx.ModelProto) -> None:
        """Parse the ONNX; every parser error is reported with its node's name and op."""
        trt = self.trt
        flags = 0
        if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # TensorRT 8.x
            flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        self.network = self.builder.create_network(flags)
        self.parser = trt.OnnxParser(self.network, self.logger)
        if not self.parser.parse(model.SerializeToString()):
            errors = [self.parser.get_error(i) for i in range(self.parser.num_errors)]
            raise EngineBuildError("TensorRT cannot parse the ONNX: " + "; ".join(
                _describe_parser_error(error, model) for error in errors
            ))

    def add_profile(self, max_batch: int, opt_batch: int) -> None:
        """Batch 1..max_batch, tuned for opt_batch (the tiles of one frame)."""
        tensor = self.network.get_input(0)
        tile = tuple(tensor.shape)[1:]
        profile = self.builder.create_optimization_profile()
        profile.set_shape(tensor.name, (1, *tile), (min(opt_batch, max_batch), *tile),
                          (max_batch, *tile))
        if self.config.add_optimization_profile(profile) < 0:
            raise EngineBuildError(f"TensorRT refused the optimisation profile for input "
                                   f"{tensor.name!r} {tile}, batch 1..{max_batch}")

    def set_precision(self, requested: str) -> str:
        """Set the builder flags; return the precision the engine really gets."""
        trt = self.trt
        fast_fp16, fast_int8 = fast_precisions(self.builder, self.platform.compute_capability)
        gpu = f"{self.platform.gpu_name} (SM {self.platform.compute_capability})"
        if requested in ("fp16", "int8") and not fast_fp16:
            self._note(f"{gpu} has no fast FP16: FP32 kernels are used where FP16 was allowed")
        if requested == "int8" and not fast_int8:
            self._note(f"{gpu} has no fast INT8: the engine is not quantised")
        effective = "fp32"
        if requested in ("fp16", "int8") and fast_fp16:
            self.config.set_flag(trt.BuilderFlag.FP16)
            effective = "fp16"
        if requested == "int8" and fast_int8:
            self.config.set_flag(trt.BuilderFlag.INT8)
            effective = "int8"
        if effective != "fp32":
            self._keep_head_fp32()
        return effective

    def set_calibrator(self, calibrator, batch: int) -> None:
        tensor = self.network.get_input(0)
        tile = tuple(tensor.shape)[1:]
        profile = self.builder.create_optimization_profile()
        profile.set_shape(tensor.name, (batch, *tile), (batch, *tile), (batch, *tile))
        if not self.config.set_calibration_profile(profile):
            raise EngineBuildError(f"TensorRT refused the calibration profile, batch {batch}")
        self.config.int8_calibrator = calibrator
        self.calibrator = calibrator

    def build(self, timing_cache: Path | None) -> bytes:
        cache = self._load_timing_cache(timing_cache)
        # TensorRT reports running out of GPU memory through its logger and a NULL result (no
        # pycuda exception can come out of it): OOM_PATTERN below is that path.
        serialized = self.builder.build_serialized_network(self.network, self.config)
        if self.progress_monitor is not None:
            self.progress_monitor.close(finished=serialized is not None)
        failure = getattr(self.calibrator, "failure", None)
        if failure:
            # a cache from this run (or one left over) would make the next build skip get_batch
            cache_path = getattr(self.calibrator, "cache_path", None)
            if cache_path is not None:
                try:
                    Path(cache_path).unlink(missing_ok=True)
                except OSError as exc:
                    log.error("cannot remove the calibration cache %s: %s", cache_path, exc)
            raise EngineBuildError(failure)
        if serialized is None:
            message = " | ".join(self.logger.errors[-3:]) or "no error message"
            if OOM_PATTERN.search(message):
                raise EngineBuildError(f"out of GPU memory while building ({message}); lower "
                                       "--max-batch or --workspace")
            raise EngineBuildError(f"TensorRT could not build the engine: {message}")
        if timing_cache is not None and cache is not None:
            write_atomic(Path(timing_cache),  # builds may run side by side (edge model)
                         bytes(self.config.get_timing_cache().serialize()))
        return bytes(serialized)

    def close(self) -> None:
        if self.calibrator is not None:
            self.calibrator.close()
        for name in ("calibrator", "parser", "network", "config", "builder", "progress_monitor"):
            setattr(self, name, None)

    def _load_timing_cache(self, path: Path | None):
        if path is None:
            return None
        data = Path(path).read_bytes() if Path(path).is_file() else b""
        cache = self.config.create_timing_cache(data)
        if not self.config.set_timing_cache(cache, False):
            log.warning("timing cache %s does not fit this TensorRT/GPU; starting afresh", path)
            cache = self.config.create_timing_cache(b"")
            self.config.set_timing_cache(cache, True)
        return cache

    def _keep_head_fp32(self) -> None:
        """The last MatMul and everything after it (bias, sigmoid), and the cam branch (the
        ONNX nodes named cam/..., convert.cam), compute in FP32."""
        trt = self.trt
        names = []
        cam = [self.network.get_layer(i) for i in range(self.network.num_layers)
               if self.network.get_layer(i).name.startswith(CAM_PREFIX)]
        for layer in [*head_layers(self.network, trt), *cam]:
            layer.precision = trt.float32
            for i in range(layer.num_outputs):
                layer.set_output_type(i, trt.float32)
            names.append(layer.name)
        if hasattr(trt.BuilderFlag, "OBEY_PRECISION_CONSTRAINTS"):
            self.config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        log.info("kept in FP32: %s", ", ".join(names))

    def _note(self, text: str) -> None:
        log.warning("%s", text)
        self.notes.append(text)


def fast_precisions(builder, capability: str) -> tuple[bool, bool]:
    """(fast FP16, fast INT8): the builder's answer, or (where a TensorRT release dropped those
    properties) the rule it encodes: FP16 is slow only on SM 6.1 and below 5.3, INT8 needs the
    DP4A of SM 6.1 and newer."""
    sm = tuple(int(p) for p in capability.split("."))
    fp16 = getattr(builder, "platform_has_fast_fp16", sm >= (5, 3) and sm != (6, 1))
    int8 = getattr(builder, "platform_has_fast_int8", sm >= (6, 1))
    return bool(fp16), bool(int8)


def head_layers(network, trt) -> list:
    """Layers from the probabilities output back to (and including) the last matrix product
    (whatever order the parser gives the outputs in: the cam may come first)."""
    producer = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            producer[layer.get_output(j).name] = layer
    allowed = {getattr(trt.LayerType, n) for n in HEAD_LAYER_TYPES if hasattr(trt.LayerType, n)}
    matmul = {getattr(trt.LayerType, n) for n in MATMUL_LAYER_TYPES if hasattr(trt.LayerType, n)}
    found = []
    outputs = [network.get_output(i) for i in range(network.num_outputs)]
    tensor = next((t for t in outputs if t.name != CAM_OUTPUT), None)  # the probabilities
    while tensor is not None:
        layer = producer.get(tensor.name)
        if layer is None or layer.type not in allowed:
            break
        found.append(layer)
        if layer.type in matmul:
            break
        computed = [
            layer.get_input(k) for k in range(layer.num_inputs)
            if layer.get_input(k) is not None
            and not _is_constant(layer.get_input(k), producer, trt)
        ]
        tensor = computed[0] if computed else None
    return found


def _is_constant(tensor, producer: dict, trt) -> bool:
    """A constant, or a reshape/copy/cast of one (the parser's bias `Add` may take the bias
    through a Shuffle): following it would miss the MatMul on the other input."""
    passthrough = {getattr(trt.LayerType, n) for n in ("SHUFFLE", "IDENTITY", "CAST")
                   if hasattr(trt.LayerType, n)}
    layer = producer.get(tensor.name)
    while layer is not None and layer.type in passthrough and layer.num_inputs > 0 \
            and layer.get_input(0) is not None:
        layer = producer.get(layer.get_input(0).name)
    return layer is not None and layer.type == trt.LayerType.CONSTANT


def _describe_parser_error(error, model: onnx.ModelProto) -> str:
    index = error.node()
    name = error.node_name() if hasattr(error, "node_name") else ""
    op = error.node_operator() if hasattr(error, "node_operator") else ""
    if 0 <= index < len(model.graph.node):
        node = model.graph.node[index]
        name, op = name or node.name, op or node.op_type
    where = f"node {index} {name!r} ({op})" if index >= 0 else "model"
    return f"{where}: {error.desc()}"


def build_engine(
    model: onnx.ModelProto,
    precision: str,
    max_batch: int,
    opt_batch: int,
    *,
    workspace_mib: int = 1024,
    timing_cache: Path | None = None,
    calibration_tiles: np.ndarray | None = None,
    calibration_cache: Path | None = None,
    verbose: bool = False,
) -> EngineBuildResult:
    """The whole build; `model` is the float32-input variant (convert.onnx_graph)."""
    builder = EngineBuilder(workspace_mib, verbose)
    with primary_context(builder.cuda):
        try:
            builder.parse(model)
            builder.add_profile(max_batch, opt_batch)
            effective = builder.set_precision(precision)
            if effective == "int8":
                _add_calibrator(builder, calibration_tiles, calibration_cache,
                                min(opt_batch, max_batch))
            engine = builder.build(timing_cache)
            layers = layer_precisions(builder.trt, engine, builder.logger)
        finally:
            builder.close()  # inside the context: the calibrator frees GPU memory
    return EngineBuildResult(engine, builder.platform, effective, list(builder.notes), layers)


def _add_calibrator(builder: EngineBuilder, tiles, cache: Path | None, batch: int) -> None:
    if tiles is None or cache is None:
        raise EngineBuildError("INT8 needs calibration tiles and a calibration cache path")
    tensor = builder.network.get_input(0)
    expected = tuple(tensor.shape)[1:]
    if tuple(tiles.shape)[1:] != expected:  # TensorRT would read past (or short of) each tile
        raise EngineBuildError(f"calibration tiles of shape {tuple(tiles.shape)[1:]} do not fit "
                               f"the network input {tensor.name!r} {expected}")
    from convert.tensorrt.calibrator import TileCalibrator  # noqa: PLC0415 (subclasses trt)

    calibrator = TileCalibrator(tiles.astype(np.float32), batch, cache, builder.cuda)
    builder.set_calibrator(calibrator, batch)

