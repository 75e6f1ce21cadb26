"""EngineBuilder's checks of TensorRT's answers, over fakes (no machine here runs TensorRT).

The calibrator itself is exercised on the real bindings in tests/test_tensorrt_api.py.
"""

from __future__ import annotations

import types

import pytest

from convert.errors import EngineBuildError
from convert.tensorrt.builder import EngineBuilder


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
