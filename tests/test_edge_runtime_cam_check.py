"""The warm-up check of a model's cam against its probabilities (edge.inference.runtime.base).

The dropping side runs over the TensorRT fakes (tests/test_tensorrt_runtime_fakes.py); here a
consistent cam is kept, for the null runtime and for a real exported ONNX Runtime model.
"""

from __future__ import annotations

import numpy as np

from edge.inference.runtime.null import NullRuntime
from edge.inference.runtime.onnxruntime import OnnxRuntime
from tests.fixtures.convert import THREADS


def test_a_consistent_null_cam_is_kept():
    runtime = NullRuntime(probabilities=[0.9, 0.1, 0.5], max_batch=2, cam=(2, 3))
    runtime.warm_up()
    assert runtime.cam_shape == (2, 3) and runtime.cam_problem is None


def test_a_wrong_null_cam_is_dropped(caplog):
    runtime = NullRuntime(probabilities=[0.9, 0.1, 0.5], max_batch=2, cam=(2, 3))
    runtime._cam = -runtime._cam  # the logits of 1 - p
    runtime.warm_up()
    assert runtime.cam_shape is None and "differs from the probabilities by 0.8" in caplog.text
    assert runtime.infer_with_cam(np.zeros((1, 256, 256, 1), np.uint8))[1] is None


def test_an_exported_models_cam_is_kept_by_onnxruntime(exported_run, caplog):
    with OnnxRuntime(exported_run.path, max_batch=2, threads=int(THREADS)) as runtime:
        assert runtime.cam_problem is None and runtime.cam_shape is not None
    assert "the cam is dropped" not in caplog.text
