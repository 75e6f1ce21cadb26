"""Model card validation and the ONNX Runtime backend on a small real ONNX graph."""

import json

import numpy as np
import pytest

from edge.errors import ModelError
from edge.inference.model import load_model
from edge.inference.modelcard import ModelCard
from edge.inference.runtime import load_runtime
from tests.fixtures.edge_daemon import WEIGHTS, write_mean_model

CARD = {
    "name": "t",
    "arch": "tiny",
    "version": "1",
    "created": "2026-01-01T00:00:00Z",
    "classes": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    "thresholds": [0.5, 0.4],
}


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
    path = write_mean_model(tmp_path)
    with load_runtime("onnxruntime", path, max_batch=4, threads=1) as runtime:
        assert runtime.input_spec.tile_shape == (256, 256, 1)
        batch = np.full((3, 256, 256, 1), 102, dtype=np.uint8)
        batch[1] = 51
        probabilities = runtime.infer(batch)
        expected = np.outer([0.4, 0.2, 0.4], WEIGHTS)  # mean / 255 * weight per class
        np.testing.assert_allclose(probabilities, expected, atol=1e-6)
        assert runtime.infer_all(np.zeros((9, 256, 256, 1), np.uint8)).shape == (9, 3)


def test_runtime_refuses_wrong_batches(tmp_path):
    runtime = load_runtime("onnxruntime", write_mean_model(tmp_path), max_batch=2)
    with pytest.raises(ModelError, match="does not match the model input"):
        runtime.infer(np.zeros((1, 128, 128, 1), np.uint8))
    with pytest.raises(ModelError, match="1..2"):
        runtime.infer(np.zeros((3, 256, 256, 1), np.uint8))
    with pytest.raises(ModelError, match="uint8"):
        runtime.infer(np.zeros((1, 256, 256, 1), np.float32))


def test_load_model_reads_card_beside_onnx_and_checks_class_count(tmp_path):
    path = write_mean_model(tmp_path, thresholds=(0.5, 0.4, 0.3), gate=None)
    loaded = load_model(path, "onnxruntime", allow_ungated=True, max_batch=2)
    assert loaded.thresholds == [0.5, 0.4, 0.3] and len(loaded.sha256) == 64
    loaded.close()
    (tmp_path / "modelcard.json").write_text(json.dumps(CARD))  # a card of 2 classes
    with pytest.raises(ModelError, match="3 outputs but its card names 2 classes"):
        load_model(path, "onnxruntime", allow_ungated=True)


def test_load_model_errors(tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        load_model(tmp_path / "none.onnx", "onnxruntime")
    path = write_mean_model(tmp_path, gate=None)
    (tmp_path / "modelcard.json").unlink()
    with pytest.raises(ModelError, match="no modelcard.json beside it"):
        load_model(path, "onnxruntime", allow_ungated=True)
    with pytest.raises(ModelError, match="unknown backend 'openvino'"):
        load_runtime("openvino", path)
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="cannot load the model"):
        load_runtime("onnxruntime", tmp_path / "bad.onnx")
