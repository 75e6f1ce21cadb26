"""The null runtime: fixed probabilities behind the real runtime interface."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import ModelError
from edge.inference.runtime import available_backends, load_runtime


def test_null_backend_returns_its_fixed_probabilities_per_tile():
    runtime = load_runtime("null", "null", probabilities=[0.9, 0.25, 0.0], max_batch=4)
    assert "null" in available_backends()
    assert runtime.input_spec.tile_shape == (256, 256, 1)
    assert runtime.num_outputs == 3
    out = runtime.infer_all(np.zeros((6, 256, 256, 1), np.uint8))
    assert out.dtype == np.float32 and out.shape == (6, 3)
    np.testing.assert_array_equal(out, np.tile(np.float32([0.9, 0.25, 0.0]), (6, 1)))


def test_null_runtime_checks_batches_like_the_real_backends():
    runtime = load_runtime("null", "null", probabilities=[0.5], max_batch=2)
    with pytest.raises(ModelError, match="1..2"):
        runtime.infer(np.zeros((3, 256, 256, 1), np.uint8))
    with pytest.raises(ModelError, match="does not match"):
        runtime.infer(np.zeros((1, 128, 128, 1), np.uint8))
    runtime.close()
    with pytest.raises(ModelError, match="after close"):
        runtime.infer(np.zeros((1, 256, 256, 1), np.uint8))


@pytest.mark.parametrize("probabilities", [[], [1.5], [[0.1, 0.2]]])
def test_null_runtime_rejects_bad_probabilities(probabilities):
    with pytest.raises(ModelError, match="probabilities"):
        load_runtime("null", "null", probabilities=probabilities)


def test_null_runtime_cam_averages_back_to_its_probabilities():
    runtime = load_runtime("null", "null", probabilities=[0.9, 0.25], max_batch=4, cam=(8, 8))
    probabilities, cam = runtime.infer_all_with_cam(np.zeros((5, 256, 256, 1), np.uint8))
    assert runtime.cam_shape == (8, 8) and cam.shape == (5, 2, 8, 8) and cam.dtype == np.float32
    np.testing.assert_allclose(1 / (1 + np.exp(-cam.mean(axis=(2, 3)))), probabilities, atol=1e-6)
    plain = load_runtime("null", "null", probabilities=[0.5])
    assert plain.cam_shape is None
    assert plain.infer_with_cam(np.zeros((1, 256, 256, 1), np.uint8))[1] is None
