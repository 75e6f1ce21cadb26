"""`convert export-onnx` on the trained tiny model: the ONNX contract and parity with Keras."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest

from convert.cam import CAM_IDENTITY_TOLERANCE, sigmoid_of_mean
from convert.errors import ExportError
from convert.export import PARITY_TOLERANCE, check_parity, onnx_outputs, onnx_probabilities
from convert.onnx_graph import graph_inputs, graph_outputs, head_nodes, producers
from convert.tiles import open_run_data, parity_tiles
from edge.errors import DataError
from edge.inference.modelcard import ModelCard
from tests.fixtures.convert import THREADS, copy_run, run_convert


def test_export_writes_the_contract(exported_run):
    model = onnx.load(str(exported_run.path))
    card = ModelCard.load(exported_run.path.parent / "modelcard.json")
    (image,), (probabilities, cam) = graph_inputs(model), graph_outputs(model)
    classes = len(card.classes)
    assert (image.name, image.dtype, image.shape) == ("image", "uint8", ["N", 256, 256, 1])
    assert probabilities.name == "probabilities"
    assert (probabilities.dtype, probabilities.shape) == ("float32", ["N", classes])
    assert (cam.name, cam.dtype, cam.shape) == ("cam", "float32", ["N", classes, 8, 8])
    assert exported_run.cam_shape == (8, 8)
    # the head computes in FP32, no rounding; the cam is one 1x1 convolution kept with the head
    assert producers(model)["probabilities"].op_type == "Sigmoid"
    assert producers(model)["cam"].op_type == "Conv"
    assert "cam/conv" in head_nodes(model)
    # the scalar normalisation runs on NCHW pixels (convert.onnx_graph.normalise_after_layout)
    assert [node.op_type for node in model.graph.node[:4]] == ["Cast", "Reshape", "Mul", "Add"]
    assert exported_run.tiles_source.startswith("test-split tiles")


def test_export_matches_keras_on_real_tiles(exported_run):
    """Recomputed here, independently of the export's own check: Keras vs ONNX Runtime."""
    from train.models import load_keras_model

    run = exported_run.path.parent
    card = ModelCard.load(run / "modelcard.json")
    tiles, source = parity_tiles(card, run, 16, seed=5)
    keras = np.asarray(load_keras_model(run / "model.keras").predict_on_batch(tiles))
    onnx_out = onnx_probabilities(exported_run.path, tiles, THREADS)
    assert "test-split" in source
    assert np.max(np.abs(onnx_out - keras)) <= PARITY_TOLERANCE
    assert exported_run.max_abs_diff <= PARITY_TOLERANCE
    assert onnx_out.std() > 0  # a real model, not a constant


def test_exporting_the_same_model_twice_gives_the_same_file(exported_run, tmp_path):
    from convert.export import export_onnx  # noqa: PLC0415
    from edge.inference.manifest import file_sha256  # noqa: PLC0415

    run = copy_run(exported_run.path.parent, tmp_path / "run")
    (run / "model.onnx").unlink()
    again = export_onnx(run, threads=THREADS)
    assert file_sha256(again.path) == file_sha256(exported_run.path)


def test_parity_failure_rejects_with_the_measured_difference(exported_run, tmp_path):
    candidate = tmp_path / "model.onnx"
    shutil.copyfile(exported_run.path, candidate)
    tiles = np.random.default_rng(1).integers(0, 256, (4, 256, 256, 1), dtype=np.uint8)
    reference = onnx_probabilities(candidate, tiles, THREADS)
    diff, cam_diff = check_parity(candidate, tiles, reference, "tiles", tmp_path / "r.onnx")
    assert diff == 0.0 and cam_diff <= CAM_IDENTITY_TOLERANCE
    shifted = reference.copy()
    shifted[2, 1] += 3e-4
    with pytest.raises(ExportError, match=r"differs from Keras by 0\.0003 .*> 0\.0001"):
        check_parity(candidate, tiles, shifted, "tiles", tmp_path / "model.onnx.rejected")
    assert not candidate.exists() and (tmp_path / "model.onnx.rejected").is_file()


def test_cam_averages_back_to_the_probabilities(exported_run):
    """The identity the localisation relies on: sigmoid(mean(cam)) == probabilities."""
    run = exported_run.path.parent
    card = ModelCard.load(run / "modelcard.json")
    tiles, _ = parity_tiles(card, run, 16, seed=6)
    probabilities, cam = onnx_outputs(exported_run.path, tiles, THREADS)
    assert cam.shape == (16, len(card.classes), 8, 8) and cam.dtype == np.float32
    assert np.max(np.abs(sigmoid_of_mean(cam) - probabilities)) <= CAM_IDENTITY_TOLERANCE
    assert exported_run.cam_max_abs_diff <= CAM_IDENTITY_TOLERANCE
    assert cam.std(axis=(2, 3)).max() > 0.1  # cells differ: the map says where, not only if


def test_a_model_without_cam_still_runs(exported_run, tmp_path):
    from edge.inference.runtime import load_runtime

    model = onnx.load(str(exported_run.path))
    del model.graph.output[1]
    old = tmp_path / "old.onnx"
    onnx.save(model, str(old))
    tiles = np.random.default_rng(2).integers(0, 256, (3, 256, 256, 1), dtype=np.uint8)
    with load_runtime("onnxruntime", old, max_batch=2, warm_up=False) as runtime:
        probabilities, cam = runtime.infer_all_with_cam(tiles)
        assert runtime.cam_shape is None and cam is None
    np.testing.assert_allclose(probabilities, onnx_probabilities(exported_run.path, tiles, 1),
                               atol=1e-6)


def test_a_cam_that_does_not_average_back_is_rejected(exported_run, tmp_path):
    candidate = tmp_path / "model.onnx"
    model = onnx.load(str(exported_run.path))
    bias = next(i for i in model.graph.initializer if i.name == "cam/bias")
    bias.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(bias) + 0.5,
                                               "cam/bias"))
    onnx.save(model, str(candidate))
    tiles = np.random.default_rng(3).integers(0, 256, (2, 256, 256, 1), dtype=np.uint8)
    reference = onnx_probabilities(exported_run.path, tiles, THREADS)
    with pytest.raises(ExportError, match=r"sigmoid\(mean\(cam\)\) differs"):
        check_parity(candidate, tiles, reference, "tiles", tmp_path / "model.onnx.rejected")
    assert (tmp_path / "model.onnx.rejected").is_file()


def test_parity_falls_back_to_synthetic_tiles_when_the_data_is_gone(exported_run, tmp_path):
    run = exported_run.path.parent
    raw = json.loads((run / "modelcard.json").read_text())
    raw["data"]["folder"] = str(tmp_path / "gone")
    card = ModelCard.from_dict(raw)
    tiles, source = parity_tiles(card, run, 6)
    assert tiles.shape == (6, 256, 256, 1) and tiles.dtype == np.uint8
    assert "synthetic" in source and "gone" in source


def test_parity_uses_synthetic_tiles_for_a_card_without_a_data_folder(
    exported_run, tmp_path, monkeypatch
):
    """A card written without `data.folder` must not read the current directory as data."""
    run = exported_run.path.parent
    raw = json.loads((run / "modelcard.json").read_text())
    del raw["data"]["folder"]
    monkeypatch.chdir(tmp_path)  # a folder that exists, as "" would resolve to
    tiles, source = parity_tiles(ModelCard.from_dict(raw), run, 3)
    assert tiles.shape == (3, 256, 256, 1)
    assert "synthetic" in source


def test_run_data_of_a_card_without_a_data_folder_is_a_one_line_error(exported_run):
    run = exported_run.path.parent
    raw = json.loads((run / "modelcard.json").read_text())
    del raw["data"]["folder"]
    with pytest.raises(DataError, match=r"names no data folder \(data\.folder\); pass --data"):
        open_run_data(ModelCard.from_dict(raw), run)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--run", "{tmp}/missing"], "run folder not found"),
        (["--run", "{tmp}/empty"], "model card not found"),
        (["--run", "{tmp}/nokeras"], "model.keras: Keras model not found"),
        (["--run", "{tmp}/x", "--opset", "11"], "invalid choice"),
        (["--run", "{tmp}/x", "--tiles", "0"], "must be >= 1"),
    ],
)
def test_bad_inputs_give_one_line_errors(exported_run, tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    nokeras = copy_run(exported_run.path.parent, tmp_path / "nokeras")
    (nokeras / "model.keras").unlink()
    result = run_convert(capsys, "export-onnx", *[a.format(tmp=tmp_path) for a in argv])
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err
    if "invalid choice" not in message and ">= 1" not in message:
        assert len(result.err.strip().splitlines()) == 1
