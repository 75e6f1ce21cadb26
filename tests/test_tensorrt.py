"""TensorRT builds and the pycuda runtime: run only where `tensorrt`, `pycuda` and a GPU are.

Everything here is skipped, with the reason, on machines without them (CI, the dev machines);
run it on the line PC: `.venv/bin/python -m pytest tests/test_tensorrt.py -m tensorrt`.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from tests.fixtures.convert import THREADS, run_convert, tile_batch

pytestmark = pytest.mark.tensorrt


def _gpu_reason() -> str | None:
    missing = [name for name in ("tensorrt", "pycuda")
               if importlib.util.find_spec(name) is None]
    if missing:
        return (f"needs an NVIDIA GPU with tensorrt and pycuda (pip install "
                f"steel-inspect[tensorrt]): {' and '.join(missing)} not installed here")
    try:
        import pycuda.driver as cuda
        import tensorrt  # noqa: F401
    except ImportError as exc:
        return f"tensorrt or pycuda is installed but does not import: {exc}"
    try:
        cuda.init()
        if cuda.Device.count() == 0:
            return "needs a CUDA GPU: none visible"
    except cuda.Error as exc:
        return f"needs a CUDA GPU: {exc}"
    return None


REASON = _gpu_reason()
needs_gpu = pytest.mark.skipif(REASON is not None, reason=REASON or "")


@pytest.fixture(scope="module")
def fp16_engine(exported_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("trt") / "model-fp16.plan"
    from convert.build import BuildOptions, build_and_gate

    outcome = build_and_gate(BuildOptions(run=exported_run.path.parent, out=out,
                                          precision="fp16", threads=THREADS))
    return outcome


@needs_gpu
def test_fp16_engine_passes_the_gate_and_records_the_gpu(fp16_engine):
    from edge.inference.manifest import probe_platform

    assert fp16_engine.passed, fp16_engine.report.format_table()
    manifest = fp16_engine.manifest
    platform = probe_platform()
    assert manifest["backend"] == "tensorrt"
    assert manifest["backend_version"] == platform.tensorrt_version
    assert manifest["gpu"] == {"name": platform.gpu_name,
                               "compute_capability": platform.compute_capability}
    assert manifest["requested_precision"] == "fp16"
    assert manifest["effective_precision"] in ("fp16", "fp32")
    if manifest["effective_precision"] == "fp32":  # e.g. a GTX 10xx: no fast FP16
        assert any("no fast FP16" in note for note in manifest["precision_notes"])
    assert manifest["input"]["dtype"] == "float32"
    assert manifest["input"]["host_cast"] == "uint8 -> float32"


@needs_gpu
def test_runtime_matches_onnx_runtime(fp16_engine, exported_onnx):
    from edge.inference.model import load_model
    from edge.inference.runtime import load_runtime

    tiles = tile_batch(11)
    with load_runtime("onnxruntime", exported_onnx, threads=THREADS) as reference:
        expected = reference.infer_all(tiles)
    model = load_model(fp16_engine.path, "tensorrt", max_batch=8)
    try:
        assert model.runtime.input_spec.max_batch == 8
        got = model.runtime.infer_all(tiles)  # batches of 8 and 3
        assert got.dtype == np.float32 and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-2)
        assert model.runtime.infer(tiles[:1]).shape == (1, expected.shape[1])
    finally:
        model.close()
    model.close()  # a second close is harmless


@needs_gpu
def test_engine_for_another_gpu_is_refused(fp16_engine):
    from edge.errors import ModelError
    from edge.inference.model import load_model

    manifest_path = fp16_engine.path.with_name(fp16_engine.path.name + ".json")
    manifest = json.loads(manifest_path.read_text())
    manifest["gpu"]["compute_capability"] = "1.0"
    manifest_path.write_text(json.dumps(manifest))
    try:
        with pytest.raises(ModelError, match="rebuild with convert build-engine"):
            load_model(fp16_engine.path, "tensorrt")
    finally:
        manifest_path.write_text(json.dumps(fp16_engine.manifest))


@needs_gpu
def test_int8_build_reports_its_gate(exported_run, tmp_path, capsys):
    out = tmp_path / "model-int8.plan"
    result = run_convert(capsys, "build-engine", "--run", exported_run.path.parent, "--out", out,
                         "--precision", "int8", "--calib-images", 8, "--threads", THREADS)
    assert result.code in (0, 3), result.err
    passed = "verdict: PASS" in result.out
    assert passed == (result.code == 0)
    written = out if passed else out.with_name(out.name + ".rejected")
    manifest = json.loads(written.with_name(written.name + ".json").read_text())
    assert manifest["calibration"]["split"] == "train"
    assert list(tmp_path.glob(".calibration-tensorrt-*.cache"))
