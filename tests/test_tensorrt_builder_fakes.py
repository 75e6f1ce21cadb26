"""EngineBuilder's checks of TensorRT's answers, over fakes (no machine here runs TensorRT).

The calibrator itself is exercised on the real bindings in tests/test_tensorrt_api.py.
"""

from __future__ import annotations

import json
import types

import pytest

from convert.errors import EngineBuildError
from convert.tensorrt.builder import EngineBuilder
from convert.tensorrt.inspector import layer_precisions, summarise_layers


class Config:
    def __init__(self, profile_index=0, calibration_ok=True) -> None:
        self.profile_index, self.calibration_ok = profile_index, calibration_ok
        self.int8_calibrator = None

    def add_optimization_profile(self, profile) -> int:
        return self.profile_index

    def set_calibration_profile(self, profile) -> bool:
        return self.calibration_ok


class Profile:
    def set_shape(self, *shapes) -> None:
        self.shapes = shapes


def fake_builder(config: Config, serialized=b"plan", calibrator=None) -> EngineBuilder:
    builder = EngineBuilder.__new__(EngineBuilder)  # no GPU: only the parts build() touches
    tensor = types.SimpleNamespace(name="tiles", shape=(-1, 256, 256, 3))
    builder.network = types.SimpleNamespace(get_input=lambda i: tensor)
    builder.builder = types.SimpleNamespace(
        create_optimization_profile=Profile,
        build_serialized_network=lambda network, config: serialized,
    )
    builder.config, builder.calibrator = config, calibrator
    builder.progress_monitor = None  # TensorRT 8.6: no IProgressMonitor
    builder.logger = types.SimpleNamespace(errors=[])
    return builder


def test_a_refused_optimisation_profile_is_an_error():
    with pytest.raises(EngineBuildError, match=r"refused the optimisation profile for input "
                                               r"'tiles' \(256, 256, 3\), batch 1..8"):
        fake_builder(Config(profile_index=-1)).add_profile(8, 7)
    fake_builder(Config(profile_index=0)).add_profile(8, 7)


def test_a_refused_calibration_profile_is_an_error():
    with pytest.raises(EngineBuildError, match="refused the calibration profile, batch 7"):
        fake_builder(Config(calibration_ok=False)).set_calibrator(object(), 7)


def test_a_failure_inside_get_batch_is_raised_after_the_build():
    """The binding swallows get_batch's exception; the engine it built anyway is not used."""
    calibrator = types.SimpleNamespace(failure="INT8 calibration failed at tile 14 of 28: "
                                               "RuntimeError: cuMemcpyHtoD failed")
    builder = fake_builder(Config(), serialized=b"plan from fewer batches", calibrator=calibrator)
    with pytest.raises(EngineBuildError, match="^INT8 calibration failed at tile 14 of 28: Runt"):
        builder.build(None)
    assert fake_builder(Config()).build(None) == b"plan"


@pytest.mark.parametrize("errors, message", [
    (["[defaultAllocator.cpp::allocate] Error Code 1: Cuda Runtime (out of memory)"],
     "out of GPU memory while building"),
    (["some tactic failure"], "could not build the engine: some tactic failure"),
])
def test_a_null_plan_says_why(errors, message):
    builder = fake_builder(Config(), serialized=None)
    builder.logger.errors = errors
    with pytest.raises(EngineBuildError, match=message):
        builder.build(None)


DETAILED = {"Layers": [
    {"Name": "conv1 + relu", "Outputs": [{"Format/Datatype": "Channel major FP16 format where "
                                                             "channel % 8 == 0"}]},
    {"Name": "res2a", "Outputs": [{"Format/Datatype": "Row major Int8 format"}]},
    {"Name": "head matmul", "Outputs": [{"Format/Datatype": "Row major linear FP32"}]},
    {"Name": "sigmoid", "Outputs": [{"Format/Datatype": "Row major linear FP32"}]},
    {"Name": "reformat", "Outputs": []},
]}


def test_layer_precisions_come_from_the_output_data_types():
    summary = summarise_layers(DETAILED)
    assert summary["layers"] == {"conv1 + relu": "fp16", "res2a": "int8", "head matmul": "fp32",
                                 "sigmoid": "fp32", "reformat": "other"}
    assert summary["counts"] == {"fp16": 1, "fp32": 2, "int8": 1, "other": 1}
    assert "engine inspector" in summary["source"]
    # without detailed verbosity the inspector lists bare layer names: nothing to record
    assert summarise_layers({"Layers": ["conv1 + relu", "res2a"]}) is None
    assert summarise_layers({"Layers": []}) is None


def fake_inspecting_trt(info: str | Exception):
    def get_engine_information(fmt):
        assert fmt == "json"
        if isinstance(info, Exception):
            raise info
        return info

    engine = types.SimpleNamespace(create_engine_inspector=lambda: types.SimpleNamespace(
        get_engine_information=get_engine_information))
    runtime = types.SimpleNamespace(deserialize_cuda_engine=lambda plan: engine)
    return types.SimpleNamespace(Runtime=lambda logger: runtime,
                                 LayerInformationFormat=types.SimpleNamespace(JSON="json"))


def test_the_inspector_record_is_optional_to_the_build(caplog):
    summary = layer_precisions(fake_inspecting_trt(json.dumps(DETAILED)), b"plan", None)
    assert summary["counts"]["fp32"] == 2
    failing = fake_inspecting_trt(RuntimeError("inspector unavailable"))
    assert layer_precisions(failing, b"plan", None) is None
    assert "per-layer precisions not recorded: engine inspector failed (inspector unavailable)" \
        in caplog.text
