"""TensorRT backend (pycuda): one CUDA context and stream, buffers allocated once for max batch.

`tensorrt` and `pycuda` are imported inside the class, so `edge` works without them. Engines built
by `convert build-engine` take float32 pixels (TensorRT 8.6 takes UINT8 only in limited ways, see
docs/convert.md); `infer` still takes uint8 tiles like every runtime and casts them into the
pinned input buffer. Only API present in TensorRT 8.6 and 10 is used (named tensors,
set_input_shape, set_tensor_address, execute_async_v3).
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from edge.errors import ModelError
from edge.inference.manifest import INSTALL_HINT, REBUILD
from edge.inference.runtime.base import CAM_OUTPUT, InputSpec, Runtime

log = logging.getLogger(__name__)

# How long close() waits for an inference call still on the GPU before leaving its memory alone.
CLOSE_WAIT_S = 5.0


def _import_tensorrt():
    try:
        import pycuda.driver as cuda  # noqa: PLC0415
        import tensorrt as trt  # noqa: PLC0415
    except ImportError as exc:
        raise ModelError(f"the tensorrt backend needs tensorrt and pycuda ({exc}); "
                         f"{INSTALL_HINT}") from None
    return trt, cuda


def tensorrt_object(factory, what: str, *args, error: type[Exception] = ModelError):
    """factory(*args), or a one-line `error` when TensorRT returns NULL (pybind11 raises
    TypeError "... returned nullptr" for that, e.g. when TensorRT's own CUDA init fails)."""
    try:
        made = factory(*args)
    except TypeError as exc:
        if "nullptr" not in str(exc):
            raise
        made = None
    if made is None:
        raise error(f"TensorRT could not create its {what} (it returned NULL: its CUDA "
                    "initialisation failed or the GPU is out of memory; see the TensorRT log above "
                    "and nvidia-smi)")
    return made


def recording_logger(trt):
    """A TensorRT logger into this module's log that keeps the errors, so a refusal can say why."""

    class RecordingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg) -> None:
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                self.errors.append(str(msg).strip())
                log.error("TensorRT: %s", msg)
            elif severity == trt.ILogger.Severity.WARNING:
                log.warning("TensorRT: %s", msg)

    return RecordingLogger()


class TensorRTRuntime(Runtime):
    backend = "tensorrt"

    def __init__(
        self, path: Path, max_batch: int = 8, threads: int = 0, warm_up: bool = True,
        device: int = 0,
    ) -> None:
        trt, cuda = _import_tensorrt()
        self.path = Path(path)
        self._trt, self._cuda = trt, cuda
        self._context = self._engine = self._execution = self._runtime = self._stream = None
        self._buffers: list = []
        self._in_flight = threading.Lock()  # held by infer; close() frees nothing while it is
        self._closed = False
        try:
            cuda.init()
            self._context = cuda.Device(device).retain_primary_context()
        except cuda.Error as exc:
            raise ModelError(f"no usable CUDA GPU {device} ({exc})") from None
        self._context.push()
        try:
            self._load(Path(path), max_batch)
        except BaseException:
            self._free()
            raise
        finally:
            cuda.Context.pop()
            if self._engine is None:
                self._detach()
        if warm_up:
            try:
                self.warm_up()
            except BaseException:
                self.close()
                raise

    def _load(self, path: Path, max_batch: int) -> None:
        trt, cuda = self._trt, self._cuda
        if not path.is_file():
            raise ModelError(f"{path}: engine not found")
        self._logger = recording_logger(trt)
        self._runtime = tensorrt_object(trt.Runtime, "runtime", self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            reason = self._logger.errors[-1] if self._logger.errors else "no reason logged"
            raise ModelError(f"{path}: TensorRT {trt.__version__} cannot load this engine "
                             f"({reason}); {REBUILD}")
        self._input, self._output, self._cam = _io_names(trt, self._engine, path)
        shape = tuple(self._engine.get_tensor_shape(self._input))
        profile_max = tuple(self._engine.get_tensor_profile_shape(self._input, 0)[2])[0]
        self._spec = InputSpec(self._input, shape[1], shape[2], shape[3],
                               max_batch=min(max_batch, profile_max))
        self._num_outputs = int(tuple(self._engine.get_tensor_shape(self._output))[1])
        self.engine_input_dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(self._input)))
        output_dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(self._output)))
        self._execution = self._engine.create_execution_context()
        self._stream = cuda.Stream()
        batch = self._spec.max_batch
        with _out_of_memory(cuda, path, batch):
            self._host_in = cuda.pagelocked_empty((batch, *shape[1:]), self.engine_input_dtype)
            self._host_out = cuda.pagelocked_empty((batch, self._num_outputs), output_dtype)
            self._device_in = self._device_alloc(self._host_in.nbytes)
            self._device_out = self._device_alloc(self._host_out.nbytes)
        for name, buffer in ((self._input, self._device_in), (self._output, self._device_out)):
            if not self._execution.set_tensor_address(name, int(buffer)):
                raise ModelError(f"{path}: TensorRT refused the address of tensor {name!r}")
        self._cam_shape = None
        if self._cam is not None:
            self._alloc_cam(path, batch)
        log.info("TensorRT engine %s: input %s %s, max batch %d", path.name,
                 self.engine_input_dtype, shape[1:], batch)

    def _alloc_cam(self, path: Path, batch: int) -> None:
        """Buffers for the optional `cam` output [N, classes, h, w] (FP32, like the head)."""
        trt, cuda = self._trt, self._cuda
        shape = tuple(self._engine.get_tensor_shape(self._cam))
        if len(shape) != 4 or shape[1] != self._num_outputs or min(shape[2:]) < 1:
            raise ModelError(f"{path}: output {self._cam!r} has shape {shape}; expected "
                             f"[N, {self._num_outputs}, h, w]")
        self._cam_shape = (int(shape[2]), int(shape[3]))
        dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(self._cam)))
        with _out_of_memory(cuda, path, batch):
            self._host_cam = cuda.pagelocked_empty((batch, *shape[1:]), dtype)
            self._device_cam = self._device_alloc(self._host_cam.nbytes)
        if not self._execution.set_tensor_address(self._cam, int(self._device_cam)):
            raise ModelError(f"{path}: TensorRT refused the address of tensor {self._cam!r}")

    def _device_alloc(self, nbytes: int):
        """GPU memory, listed for `_free` at once: a later allocation may fail."""
        buffer = self._cuda.mem_alloc(nbytes)
        self._buffers.append(buffer)
        return buffer

    @property
    def cam_shape(self) -> tuple[int, int] | None:
        return self._cam_shape

    def infer_with_cam(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return self._run(batch, with_cam=self._cam_shape is not None)

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    @property
    def num_outputs(self) -> int:
        return self._num_outputs

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch, with_cam=False)[0]

    def _run(self, batch: np.ndarray, with_cam: bool) -> tuple[np.ndarray, np.ndarray | None]:
        batch = self.check_batch(batch)
        if self._closed:  # before the lock: a hung call may hold it
            raise ModelError("the TensorRT runtime is closed; load the model again")
        with self._in_flight:
            if self._closed:
                raise ModelError("the TensorRT runtime is closed; load the model again")
            return self._infer(batch, with_cam)

    def _infer(self, batch: np.ndarray, with_cam: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """One batch on the GPU; the cam (written on the device every run) is copied back only
        when asked for."""
        n = len(batch)
        cuda = self._cuda
        host_in, host_out = self._host_in[:n], self._host_out[:n]
        np.copyto(host_in, batch, casting="unsafe")  # uint8 -> float32 pixels, values unchanged
        self._context.push()
        try:
            if not self._execution.set_input_shape(self._input, tuple(batch.shape)):
                raise ModelError(f"TensorRT refused input shape {tuple(batch.shape)} for "
                                 f"{self._input!r} (engine profile max {self._spec.max_batch})")
            cuda.memcpy_htod_async(self._device_in, host_in, self._stream)
            if not self._execution.execute_async_v3(self._stream.handle):
                raise ModelError(f"TensorRT execution failed for a batch of {n}")
            cuda.memcpy_dtoh_async(host_out, self._device_out, self._stream)
            if with_cam:
                cuda.memcpy_dtoh_async(self._host_cam[:n], self._device_cam, self._stream)
            self._stream.synchronize()
        finally:
            cuda.Context.pop()
        cam = self._host_cam[:n].astype(np.float32, copy=True) if with_cam else None
        return host_out.astype(np.float32, copy=True), cam

    def close(self) -> None:
        """Free everything, unless an inference call is still on the GPU after CLOSE_WAIT_S:
        then its buffers, stream and context stay allocated (a hung call may still write into
        them) until the process exits. Either way, infer afterwards raises ModelError."""
        if not self._in_flight.acquire(timeout=CLOSE_WAIT_S):
            self._closed = True
            log.error("TensorRT inference still running after %.1f s; leaving its GPU memory "
                      "allocated until the process exits", CLOSE_WAIT_S)
            return
        try:
            self._closed = True
            if self._context is None:
                return
            self._context.push()
            try:
                self._free()
            finally:
                self._cuda.Context.pop()
                self._detach()
        finally:
            self._in_flight.release()

    def _free(self) -> None:
        """Free the device buffers, the execution context and the engine (context pushed).
        A buffer that fails to free is logged and the rest are still freed: close() returns."""
        try:
            for buffer in self._buffers:
                try:
                    buffer.free()
                except Exception as exc:  # pycuda's LogicError, a CUDA error after a fault
                    log.warning("TensorRT: freeing a GPU buffer failed: %s: %s",
                                type(exc).__name__, exc)
        finally:
            self._buffers = []
            # dropped with the context current, so pycuda destroys the stream in it
            self._stream = self._execution = self._engine = self._runtime = None
            self._host_in = self._host_out = self._host_cam = None

    def _detach(self) -> None:
        if self._context is not None:
            context, self._context = self._context, None
            context.detach()


@contextmanager
def _out_of_memory(cuda, path: Path, batch: int):
    """pycuda's MemoryError (pinned host or device memory) as a one-line ModelError."""
    try:
        yield
    except cuda.MemoryError as exc:
        raise ModelError(f"{path}: out of GPU memory for batch {batch} ({exc})") from None


def _io_names(trt, engine, path: Path) -> tuple[str, str, str | None]:
    """(input, probabilities output, cam output or None)."""
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    probabilities = [n for n in outputs if n != CAM_OUTPUT]
    if len(inputs) != 1 or len(probabilities) != 1:
        raise ModelError(f"{path}: expected 1 input and 1 output (+ {CAM_OUTPUT!r}), found "
                         f"{inputs} and {outputs}")
    return inputs[0], probabilities[0], CAM_OUTPUT if CAM_OUTPUT in outputs else None
