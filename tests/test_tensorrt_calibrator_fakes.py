"""TileCalibrator's failure and cache paths over a fake `tensorrt` and fake pycuda (no GPU here).

The real binding's base class and callbacks are checked in tests/test_tensorrt_api.py.
"""

from __future__ import annotations

import importlib
import sys
import types

import numpy as np
import pytest


class Allocation:
    def __init__(self, nbytes: int) -> None:
        self.nbytes, self.freed = nbytes, False

    def __int__(self) -> int:
        return id(self)

    def free(self) -> None:
        self.freed = True


def fake_cuda(fail_on_copy: int | None = None):
    """pycuda.driver stand-in; memcpy_htod raises on its `fail_on_copy`-th call (1-based)."""
    cuda = types.ModuleType("pycuda.driver")
    cuda.Error = type("Error", (Exception,), {})
    cuda.MemoryError = type("MemoryError", (cuda.Error,), {})
    cuda.copies = 0
    cuda.mem_alloc = Allocation

    def memcpy_htod(device, host):
        cuda.copies += 1
        if cuda.copies == fail_on_copy:
            raise cuda.Error("cuMemcpyHtoD failed: an illegal memory access was encountered")

    cuda.memcpy_htod = memcpy_htod
    return cuda


@pytest.fixture
def calibrator_module(monkeypatch):
    trt = types.ModuleType("tensorrt")

    class IInt8EntropyCalibrator2:
        def __init__(self) -> None:
            pass

    trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.delitem(sys.modules, "convert.tensorrt.calibrator", raising=False)
    module = importlib.import_module("convert.tensorrt.calibrator")
    yield module
    sys.modules.pop("convert.tensorrt.calibrator", None)  # never left bound to the fake


def tiles(n: int = 8) -> np.ndarray:
    return np.zeros((n, 4, 4, 3), np.float32)


def test_a_failed_calibration_writes_no_cache(calibrator_module, tmp_path):
    cache = tmp_path / "calib.cache"
    calibrator = calibrator_module.TileCalibrator(tiles(), 2, cache, fake_cuda(fail_on_copy=2))
    batches = []
    while (batch := calibrator.get_batch(["tiles"])) is not None:
        batches.append(batch)
    assert len(batches) == 1  # the second copy failed: TensorRT takes None as the end of data
    assert calibrator.failure.startswith("INT8 calibration failed at tile 2 of 8: Error: ")
    calibrator.write_calibration_cache(memoryview(b"partial"))
    assert not cache.exists()  # the next build would have reused it and skipped get_batch
    calibrator.close()


def test_a_complete_calibration_writes_its_cache(calibrator_module, tmp_path):
    cache = tmp_path / "calib.cache"
    calibrator = calibrator_module.TileCalibrator(tiles(), 2, cache, fake_cuda())
    while calibrator.get_batch(["tiles"]) is not None:
        pass
    assert calibrator.failure is None
    calibrator.write_calibration_cache(memoryview(b"complete"))
    assert cache.read_bytes() == b"complete"
    assert calibrator.read_calibration_cache() == b"complete"
    calibrator.close()


def test_a_failed_cache_write_leaves_the_previous_cache_whole(calibrator_module, tmp_path,
                                                             monkeypatch, caplog):
    """Written through a temporary file and a rename: a build beside this one (or a crash)
    never reads a half-written cache; a write error is logged, not raised into TensorRT."""
    cache = tmp_path / "calib.cache"
    cache.write_bytes(b"previous")
    calibrator = calibrator_module.TileCalibrator(tiles(), 2, cache, fake_cuda())
    while calibrator.get_batch(["tiles"]) is not None:
        pass

    def no_rename(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", no_rename)
    calibrator.write_calibration_cache(memoryview(b"new"))
    assert cache.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["calib.cache"]  # no temporary left
    assert "cannot write the calibration cache" in caplog.text
    calibrator.close()


def test_an_unreadable_cache_is_the_builds_failure(calibrator_module, tmp_path, monkeypatch):
    """The binding swallows the callback's exception: it is recorded for build() to raise."""
    cache = tmp_path / "calib.cache"
    cache.write_bytes(b"cache")
    calibrator = calibrator_module.TileCalibrator(tiles(), 2, cache, fake_cuda())

    def unreadable(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(cache), "read_bytes", unreadable)
    assert calibrator.read_calibration_cache() is None
    assert calibrator.failure.startswith(f"cannot read the calibration cache {cache}: ")
    assert calibrator.get_batch(["tiles"]) is None  # no calibration run for a failed build
    calibrator.close()
