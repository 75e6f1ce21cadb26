"""The warm-up check of a model's cam against its probabilities (edge.inference.runtime.base).

The dropping side runs over the TensorRT fakes (tests/test_tensorrt_runtime_fakes.py); here a
consistent cam is kept, for the null runtime and for a real exported ONNX Runtime model.
"""

from __future__ import annotations

import re
import shutil

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


def test_edge_check_says_why_a_cam_was_dropped(exported_run, tmp_path, mqtt_broker, capsys,
                                               caplog):
    """An engine whose cam does not average back to its probabilities (a cam bias shifted by
    0.5 logits) still passes `edge check`, which names the dropped cam and the difference."""
    import onnx

    from edge.cli import main
    from tests.fixtures.edge_daemon import (
        daemon_sections,
        frame_with_tiles,
        write_config,
        write_frames,
    )

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    model = onnx.load(str(exported_run.path))
    bias = next(i for i in model.graph.initializer if i.name == "cam/bias")
    bias.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(bias) + 0.5,
                                               "cam/bias"))
    onnx.save(model, str(model_dir / "model.onnx"))
    shutil.copyfile(exported_run.path.parent / "modelcard.json", model_dir / "modelcard.json")
    images = write_frames(tmp_path / "frames", {"a.png": frame_with_tiles([90, 160])})
    sections = daemon_sections(tmp_path, mqtt_broker, model_dir / "model.onnx", images)
    sections["model"]["allow_ungated"] = True  # a hand-broken export, never gated
    config = write_config(tmp_path / "edge.toml", sections)

    assert main(["check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    # 0.5 logits move a black tile's low probabilities by about 0.03: above the 0.02 tolerance
    assert re.search(r"cam dropped \(sigmoid\(mean\(cam\)\) differs from the probabilities by "
                     r"0\.0[2-9]\d* \(tolerance 0\.02\)\): defect boxes stay tile-sized", out)
    assert "re-export it" not in caplog.text  # the dropped cam said why; no second, wrong hint
