"""EngineBuilder's checks of TensorRT's answers, over fakes (no machine here runs TensorRT).

The calibrator itself is exercised on the real bindings in tests/test_tensorrt_api.py.
"""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from convert.errors import EngineBuildError
from convert.tensorrt.builder import EngineBuilder, _add_calibrator, head_layers
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


class Tensor:
    def __init__(self, name: str) -> None:
        self.name = name


class Layer:
    def __init__(self, name: str, kind: str, inputs: list, outputs: list) -> None:
        self.name, self.type = name, kind
        self.inputs, self.outputs = inputs, outputs
        self.num_inputs, self.num_outputs = len(inputs), len(outputs)
        self.precision, self.output_types = None, {}

    def get_input(self, i):
        return self.inputs[i]

    def get_output(self, i):
        return self.outputs[i]

    def set_output_type(self, i, dtype) -> None:
        self.output_types[i] = dtype


class Network:
    """features -> pool -> shuffle -> matmul (constant weights) -> bias add -> sigmoid, and the
    cam branch on the features; the parser lists `cam` as the first output."""

    def __init__(self, bias_shuffle: bool = False) -> None:
        t = {n: Tensor(n) for n in ("features", "pooled", "flat", "w", "logit0", "b", "logit",
                                    "probabilities", "cam_w", "cam", "b0")}
        self.layers = [
            Layer("backbone/relu", "ACTIVATION", [], [t["features"]]),
            Layer("pool", "REDUCE", [t["features"]], [t["pooled"]]),
            Layer("flatten", "SHUFFLE", [t["pooled"]], [t["flat"]]),
            Layer("dense/w", "CONSTANT", [], [t["w"]]),
            Layer("dense/matmul", "MATRIX_MULTIPLY", [t["flat"], t["w"]], [t["logit0"]]),
            Layer("dense/b", "CONSTANT", [], [t["b"]]),
            Layer("dense/add", "ELEMENTWISE", [t["b"], t["logit0"]], [t["logit"]]),
            Layer("sigmoid", "ACTIVATION", [t["logit"]], [t["probabilities"]]),
            Layer("cam/weights", "CONSTANT", [], [t["cam_w"]]),
            Layer("cam/conv", "CONVOLUTION", [t["features"], t["cam_w"]], [t["cam"]]),
        ]
        if bias_shuffle:  # the bias reaches the Add through a reshape of the constant
            self.layers[5:6] = [Layer("dense/b", "CONSTANT", [], [t["b0"]]),
                                Layer("dense/b/reshape", "SHUFFLE", [t["b0"]], [t["b"]])]
        self.outputs = [t["cam"], t["probabilities"]]
        self.num_layers, self.num_outputs = len(self.layers), len(self.outputs)

    def get_layer(self, i):
        return self.layers[i]

    def get_output(self, i):
        return self.outputs[i]


def test_the_head_and_the_cam_branch_are_kept_in_fp32_whatever_the_output_order():
    kinds = ("ACTIVATION", "REDUCE", "SHUFFLE", "CONSTANT", "MATRIX_MULTIPLY", "ELEMENTWISE",
             "CONVOLUTION")
    trt = types.SimpleNamespace(
        LayerType=types.SimpleNamespace(**{k: k for k in kinds}), float32="float32",
        BuilderFlag=types.SimpleNamespace(OBEY_PRECISION_CONSTRAINTS="obey"))
    flags = []
    builder = EngineBuilder.__new__(EngineBuilder)
    builder.trt, builder.network = trt, Network()
    builder.config = types.SimpleNamespace(set_flag=flags.append)

    assert [layer.name for layer in head_layers(builder.network, trt)] == [
        "sigmoid", "dense/add", "dense/matmul"]
    builder._keep_head_fp32()
    kept = {layer.name for layer in builder.network.layers if layer.precision == "float32"}
    assert kept == {"sigmoid", "dense/add", "dense/matmul", "cam/weights", "cam/conv"}
    assert all(layer.output_types == {0: "float32"} for layer in builder.network.layers
               if layer.name in kept)
    assert flags == ["obey"]  # otherwise TensorRT may still pick faster lower-precision kernels


def test_a_failed_calibration_removes_its_cache_before_raising(tmp_path):
    """Written by this build before the failure was known (or left over): the next build would
    read it and calibrate from nothing."""
    cache = tmp_path / "calib.cache"
    cache.write_bytes(b"partial")
    calibrator = types.SimpleNamespace(failure="INT8 calibration failed at tile 2 of 8: Error",
                                       cache_path=cache)
    with pytest.raises(EngineBuildError, match="^INT8 calibration failed at tile 2 of 8"):
        fake_builder(Config(), calibrator=calibrator).build(None)
    assert not cache.exists()


def test_calibration_tiles_of_another_shape_than_the_network_input_are_refused(tmp_path):
    """Before any GPU memory is taken: the calibrator would copy wrong-sized batches."""
    builder = fake_builder(Config())
    tiles = np.zeros((8, 224, 224, 1), np.uint8)
    message = (r"^calibration tiles of shape \(224, 224, 1\) do not fit the network input "
               r"'tiles' \(256, 256, 3\)$")
    with pytest.raises(EngineBuildError, match=message):
        _add_calibrator(builder, tiles, tmp_path / "calib.cache", 2)
    assert builder.calibrator is None


def test_the_head_is_found_through_a_bias_add_whose_bias_is_a_reshaped_constant():
    """Add(reshape(bias), matmul): the computed input is the MatMul's, not the bias branch."""
    kinds = ("ACTIVATION", "REDUCE", "SHUFFLE", "CONSTANT", "MATRIX_MULTIPLY", "ELEMENTWISE",
             "CONVOLUTION")
    trt = types.SimpleNamespace(LayerType=types.SimpleNamespace(**{k: k for k in kinds}))
    assert [layer.name for layer in head_layers(Network(bias_shuffle=True), trt)] == [
        "sigmoid", "dense/add", "dense/matmul"]
