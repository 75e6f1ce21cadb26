"""TensorRTRuntime's error and shutdown paths over fake `tensorrt` and `pycuda.driver` modules.

No machine here runs TensorRT; the fakes record what the runtime frees and can refuse, fail or
hang where the real library would, so these paths run on every CI machine. The names the fakes
stand in for are checked against the real bindings by tests/test_tensorrt_api.py.
"""

from __future__ import annotations

import sys
import threading
import types

import numpy as np
import pytest

import edge.inference.runtime.tensorrt as trt_runtime
from edge.errors import ModelError
from edge.inference.runtime.tensorrt import TensorRTRuntime

H, W, C, K, PROFILE_MAX = 8, 8, 3, 4, 8


class Allocation:
    def __init__(self, nbytes: int) -> None:
        self.nbytes, self.freed, self.data = nbytes, False, None
        self.free_error: Exception | None = None  # free() raises this instead

    def __int__(self) -> int:
        return id(self)

    def free(self) -> None:
        if self.free_error is not None:
            raise self.free_error
        self.freed = True


class Execution:
    def __init__(self, fakes) -> None:
        self.fakes = fakes
        self.outputs: dict[str, int] = {}

    def set_tensor_address(self, name, address) -> bool:
        self.outputs[name] = address
        return self.fakes.accept_address

    def set_input_shape(self, name, shape) -> bool:
        return self.fakes.accept_shape

    def execute_async_v3(self, stream_handle) -> bool:
        """Writes every output on the device: probabilities 0.25, cam 0, 0.01, 0.02, ..."""
        self.fakes.executing.set()
        self.fakes.release.wait(10)
        for name, address in self.outputs.items():
            device = self.fakes.allocation_at(address)
            values = device.nbytes // 4
            if name == "probabilities":
                device.data = np.full(values, 0.25, np.float32)
            elif name == "cam":
                device.data = np.arange(values, dtype=np.float32) / 100
        return self.fakes.execute_ok


class Engine:
    def __init__(self, fakes) -> None:
        self.fakes = fakes
        self.names = ("tiles", "probabilities") + (("cam",) if fakes.cam_shape else ())
        self.num_io_tensors = len(self.names)

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return "in" if name == "tiles" else "out"

    def get_tensor_shape(self, name):
        return {"tiles": (-1, H, W, C), "probabilities": (-1, K), "cam": self.fakes.cam_shape}[name]

    def get_tensor_profile_shape(self, name, profile):
        return [(1, H, W, C), (PROFILE_MAX, H, W, C), (PROFILE_MAX, H, W, C)]

    def get_tensor_dtype(self, name):
        return np.float32

    def create_execution_context(self):
        return Execution(self.fakes)


class Fakes:
    """The fake modules and the knobs the tests turn."""

    def __init__(self) -> None:
        self.accept_address = self.accept_shape = self.execute_ok = True
        self.null_runtime = False
        self.cam_shape = None  # e.g. (-1, K, 2, 3): the engine has a `cam` output
        self.copied_back: list[int] = []  # nbytes of every device-to-host copy
        self.engine_error = None  # a TensorRT log line, and deserialising returns NULL
        self.executing, self.release = threading.Event(), threading.Event()
        self.release.set()
        self.allocations: list[Allocation] = []
        self.fail_alloc_at = None  # mem_alloc raises cuda.MemoryError on this call (1-based)
        self.alloc_calls = 0
        self.streams: list = []
        self.detached = 0
        self.trt, self.cuda = self._tensorrt(), self._cuda()

    def _tensorrt(self):
        fakes = self
        trt = types.ModuleType("tensorrt")
        trt.__version__ = "10.16.1.11"
        trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
        trt.nptype = lambda dtype: dtype

        class ILogger:
            Severity = types.SimpleNamespace(INTERNAL_ERROR=0, ERROR=1, WARNING=2, INFO=3)

            def __init__(self) -> None:
                pass

        class Runtime:
            def __new__(cls, logger):
                if fakes.null_runtime:
                    raise TypeError("pybind11::init(): factory function returned nullptr")
                runtime = super().__new__(cls)
                runtime.logger = logger
                return runtime

            def deserialize_cuda_engine(self, data):
                if fakes.engine_error:
                    self.logger.log(ILogger.Severity.ERROR, fakes.engine_error)
                    return None
                return Engine(fakes)

        trt.ILogger, trt.Runtime = ILogger, Runtime
        return trt

    def _cuda(self):
        fakes = self
        cuda = types.ModuleType("pycuda.driver")
        cuda.Error = type("Error", (Exception,), {})
        cuda.MemoryError = type("MemoryError", (cuda.Error,), {})
        cuda.init = lambda: None

        class Context:
            pop = staticmethod(lambda: None)

            def push(self) -> None:
                pass

            def detach(self) -> None:
                fakes.detached += 1

        class Stream:
            handle = 1

            def __init__(self) -> None:
                fakes.streams.append(self)

            def synchronize(self) -> None:
                pass

        def mem_alloc(nbytes):
            fakes.alloc_calls += 1
            if fakes.alloc_calls == fakes.fail_alloc_at:
                raise cuda.MemoryError("cuMemAlloc failed: out of memory")
            fakes.allocations.append(Allocation(nbytes))
            return fakes.allocations[-1]

        def htod(device, host, stream):
            device.data = host.copy()

        def dtoh(host, device, stream):
            fakes.copied_back.append(host.nbytes)
            host[...] = device.data[: host.size].reshape(host.shape)

        cuda.Device = lambda n: types.SimpleNamespace(retain_primary_context=Context)
        cuda.Context, cuda.Stream, cuda.mem_alloc = Context, Stream, mem_alloc
        cuda.pagelocked_empty = lambda shape, dtype: np.empty(shape, dtype)
        cuda.memcpy_htod_async, cuda.memcpy_dtoh_async = htod, dtoh
        return cuda

    def allocation_at(self, address: int) -> Allocation:
        return next(a for a in self.allocations if id(a) == address)

    @property
    def freed(self) -> list[bool]:
        return [a.freed for a in self.allocations]


@pytest.fixture
def fakes(monkeypatch) -> Fakes:
    made = Fakes()
    pycuda = types.ModuleType("pycuda")
    pycuda.driver = made.cuda
    monkeypatch.setitem(sys.modules, "tensorrt", made.trt)
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", made.cuda)
    return made


@pytest.fixture
def engine_file(tmp_path):
    path = tmp_path / "model.engine"
    path.write_bytes(b"serialised engine")
    return path


def tiles(n: int) -> np.ndarray:
    return np.full((n, H, W, C), 7, dtype=np.uint8)


def test_infer_then_close_frees_buffers_stream_and_context(fakes, engine_file):
    runtime = TensorRTRuntime(engine_file, max_batch=4)
    out = runtime.infer(tiles(3))
    assert out.shape == (3, K) and out.dtype == np.float32 and np.all(out == 0.25)
    assert np.all(fakes.allocations[0].data[:3] == 7.0)  # uint8 tiles cast into float32 input
    assert runtime._stream is fakes.streams[0]
    runtime.close()
    assert fakes.freed == [True, True] and fakes.detached == 1
    assert runtime._stream is None  # dropped while the context was current
    with pytest.raises(ModelError, match="runtime is closed"):
        runtime.infer(tiles(1))
    runtime.close()  # twice is harmless
    assert fakes.detached == 1


def test_an_engine_tensorrt_refuses_says_why(fakes, engine_file):
    fakes.engine_error = "Serialization assertion stdVersionRead == kSERIALIZATION_VERSION failed"
    with pytest.raises(ModelError) as raised:
        TensorRTRuntime(engine_file)
    message = str(raised.value)
    assert str(engine_file) in message and "10.16.1.11 cannot load this engine" in message
    assert "stdVersionRead == kSERIALIZATION_VERSION failed" in message
    assert "rebuild with convert build-engine" in message and "\n" not in message
    assert fakes.detached == 1


def test_a_null_runtime_is_a_one_line_error(fakes, engine_file):
    fakes.null_runtime = True
    with pytest.raises(ModelError, match=r"^TensorRT could not create its runtime \(") as raised:
        TensorRTRuntime(engine_file)
    assert "\n" not in str(raised.value) and fakes.detached == 1


def test_a_refused_tensor_address_frees_what_was_allocated(fakes, engine_file):
    fakes.accept_address = False
    with pytest.raises(ModelError, match="refused the address of tensor 'tiles'"):
        TensorRTRuntime(engine_file, max_batch=4)
    assert fakes.freed == [True, True] and fakes.detached == 1


def test_a_refused_input_shape_is_an_error_not_a_wrong_result(fakes, engine_file):
    runtime = TensorRTRuntime(engine_file, max_batch=4, warm_up=False)
    fakes.accept_shape = False
    with pytest.raises(ModelError, match=r"refused input shape \(2, 8, 8, 3\)"):
        runtime.infer(tiles(2))
    runtime.close()


def test_a_failed_warm_up_frees_everything(fakes, engine_file):
    fakes.execute_ok = False
    with pytest.raises(ModelError, match="execution failed for a batch of 4"):
        TensorRTRuntime(engine_file, max_batch=4)
    assert fakes.freed == [True, True] and fakes.detached == 1


def test_close_leaves_the_memory_of_a_hung_inference_alone(fakes, engine_file, monkeypatch,
                                                           caplog):
    monkeypatch.setattr(trt_runtime, "CLOSE_WAIT_S", 0.2)
    runtime = TensorRTRuntime(engine_file, max_batch=4, warm_up=False)
    fakes.release.clear()  # the next execute hangs until released
    results = []
    hung = threading.Thread(target=lambda: results.append(runtime.infer(tiles(1))))
    hung.start()
    assert fakes.executing.wait(5)
    runtime.close()
    assert fakes.freed == [False, False] and fakes.detached == 0
    assert "still running after 0.2 s" in caplog.text
    with pytest.raises(ModelError, match="runtime is closed"):
        runtime.infer(tiles(1))  # at once, without waiting for the hung call
    fakes.release.set()
    hung.join(5)
    assert not hung.is_alive()
    assert len(results) == 1 and results[0].shape == (1, K)  # it still wrote into live buffers


def test_the_cam_output_is_copied_back_with_its_own_values_when_asked_for(fakes, engine_file):
    fakes.cam_shape = (-1, K, 2, 3)
    runtime = TensorRTRuntime(engine_file, max_batch=4, warm_up=False)
    assert runtime.cam_shape == (2, 3)
    probabilities, cam = runtime.infer_with_cam(tiles(3))
    assert probabilities.shape == (3, K) and np.all(probabilities == 0.25)
    assert cam.shape == (3, K, 2, 3) and cam.dtype == np.float32
    expected = (np.arange(3 * K * 6, dtype=np.float32) / 100).reshape(3, K, 2, 3)
    np.testing.assert_array_equal(cam, expected)  # the device's cam, not the host buffer's
    cam_bytes = 3 * K * 6 * 4
    assert fakes.copied_back == [3 * K * 4, cam_bytes]
    runtime.infer(tiles(2))  # probabilities only: the cam stays on the GPU
    assert fakes.copied_back[2:] == [2 * K * 4]
    runtime.close()
    assert fakes.freed == [True, True, True] and fakes.detached == 1


def test_a_cam_output_of_the_wrong_shape_is_refused_and_freed(fakes, engine_file):
    fakes.cam_shape = (-1, K + 1, 8, 8)
    with pytest.raises(ModelError, match=rf"output 'cam' has shape \(-1, {K + 1}, 8, 8\); "
                                         rf"expected \[N, {K}, h, w\]"):
        TensorRTRuntime(engine_file, max_batch=4)
    assert fakes.freed == [True, True] and fakes.detached == 1


def test_an_engine_without_cam_answers_none(fakes, engine_file):
    runtime = TensorRTRuntime(engine_file, max_batch=4, warm_up=False)
    probabilities, cam = runtime.infer_with_cam(tiles(1))
    assert runtime.cam_shape is None and cam is None and probabilities.shape == (1, K)
    runtime.close()


@pytest.mark.parametrize("cam_shape, fail_at", [(None, 2), ((-1, K, 2, 3), 3)])
def test_out_of_gpu_memory_while_loading_frees_what_was_allocated(fakes, engine_file, cam_shape,
                                                                   fail_at):
    """The output (or cam) buffer does not fit: the input (and output) buffers made before it
    are freed, not leaked into a daemon that retries the load."""
    fakes.cam_shape, fakes.fail_alloc_at = cam_shape, fail_at
    with pytest.raises(ModelError, match=r"model.engine: out of GPU memory for batch 4 \(cuMem"):
        TensorRTRuntime(engine_file, max_batch=4)
    assert len(fakes.allocations) == fail_at - 1
    assert all(fakes.freed) and fakes.detached == 1


def test_a_buffer_that_fails_to_free_does_not_stop_close(fakes, engine_file, caplog):
    fakes.cam_shape = (-1, K, 2, 3)
    runtime = TensorRTRuntime(engine_file, max_batch=4, warm_up=False)
    fakes.allocations[0].free_error = fakes.cuda.Error("cuMemFree failed: an illegal memory "
                                                       "access was encountered")
    runtime.close()
    assert fakes.freed == [False, True, True] and fakes.detached == 1
    assert runtime._engine is None and runtime._buffers == []
    assert "freeing a GPU buffer failed: Error: cuMemFree failed" in caplog.text


def test_a_cam_that_disagrees_with_the_probabilities_is_dropped_at_warm_up(fakes, engine_file,
                                                                          caplog):
    """The fakes' cam (0, 0.01, ...) is not the logit map of their 0.25 probabilities: one
    WARNING naming the engine and the difference, and the model runs on without cam."""
    fakes.cam_shape = (-1, K, 2, 3)
    runtime = TensorRTRuntime(engine_file, max_batch=4)
    assert runtime.cam_shape is None
    assert runtime.cam_problem.startswith("sigmoid(mean(cam)) differs from the probabilities by ")
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and str(engine_file) in warnings[0].getMessage()
    assert "the cam is dropped, defect boxes stay tile-sized" in warnings[0].getMessage()
    probabilities, cam = runtime.infer_with_cam(tiles(2))
    assert cam is None and np.all(probabilities == 0.25)
    runtime.close()
    assert fakes.freed == [True, True, True] and fakes.detached == 1
