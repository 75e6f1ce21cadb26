"""Model card validation and the ONNX Runtime backend on a small real ONNX graph."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edge.errors import ModelError
from edge.model import load_model
from edge.modelcard import ModelCard
from edge.runtime import load_runtime

CARD = {
    "name": "t",
    "arch": "tiny",
    "version": "1",
    "created": "2026-01-01T00:00:00Z",
    "classes": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    "thresholds": [0.5, 0.4],
}


def mean_model(path, classes=2):
    """uint8 [N,256,256,1] -> per-class sigmoid of the scaled mean pixel, a real 2-op graph."""
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["m"], axes=[1, 2], keepdims=0),  # [N, 1]
        helper.make_node("Mul", ["m", "scale"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["probabilities"]),
    ]
    inits = [
        helper.make_tensor(
            "scale", TensorProto.FLOAT, [1, classes], [0.01 * (c + 1) for c in range(classes)]
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "mean",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", 256, 256, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_card_round_trip(tmp_path):
    card = ModelCard.from_dict(CARD)
    card.save(tmp_path / "modelcard.json")
    assert ModelCard.load(tmp_path / "modelcard.json") == card
    assert card.class_names == ["a", "b"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"thresholds": [0.5]}, "1 thresholds for 2 classes"),
        ({"thresholds": [0.5, 1.5]}, "thresholds must lie in"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"classes": [{"id": 0, "name": "a"}, {"id": 2, "name": "b"}]}, "classes.0.id"),
    ],
)
def test_card_errors_are_one_line_and_name_the_key(change, message):
    with pytest.raises(ModelError, match=message) as info:
        ModelCard.from_dict({**CARD, **change}, source="x.json")
    assert "\n" not in str(info.value)


def test_onnxruntime_infers_probabilities(tmp_path):
    path = mean_model(tmp_path / "m.onnx")
    with load_runtime("onnxruntime", path, max_batch=4, threads=1) as runtime:
        assert runtime.input_spec.tile_shape == (256, 256, 1)
        batch = np.full((3, 256, 256, 1), 100, dtype=np.uint8)
        probabilities = runtime.infer(batch)
        expected = 1 / (1 + np.exp(-np.array([1.0, 2.0])))
        np.testing.assert_allclose(probabilities, np.tile(expected, (3, 1)), atol=1e-6)
        assert runtime.infer_all(np.zeros((9, 256, 256, 1), np.uint8)).shape == (9, 2)


def test_runtime_refuses_wrong_batches(tmp_path):
    runtime = load_runtime("onnxruntime", mean_model(tmp_path / "m.onnx"), max_batch=2)
    with pytest.raises(ModelError, match="does not match the model input"):
        runtime.infer(np.zeros((1, 128, 128, 1), np.uint8))
    with pytest.raises(ModelError, match="1..2"):
        runtime.infer(np.zeros((3, 256, 256, 1), np.uint8))
    with pytest.raises(ModelError, match="uint8"):
        runtime.infer(np.zeros((1, 256, 256, 1), np.float32))


def test_load_model_reads_card_beside_onnx_and_checks_class_count(tmp_path):
    path = mean_model(tmp_path / "model.onnx")
    (tmp_path / "modelcard.json").write_text(json.dumps(CARD))
    loaded = load_model(path, "onnxruntime", max_batch=2)
    assert loaded.thresholds == [0.5, 0.4] and len(loaded.sha256) == 64
    loaded.close()
    mean_model(path, classes=3)
    with pytest.raises(ModelError, match="3 outputs but its card names 2 classes"):
        load_model(path, "onnxruntime")


def test_load_model_errors(tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        load_model(tmp_path / "none.onnx", "onnxruntime")
    path = mean_model(tmp_path / "model.onnx")
    with pytest.raises(ModelError, match="no modelcard.json beside it"):
        load_model(path, "onnxruntime")
    with pytest.raises(ModelError, match="unknown backend 'openvino'"):
        load_runtime("openvino", path)
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="cannot load the model"):
        load_runtime("onnxruntime", tmp_path / "bad.onnx")
