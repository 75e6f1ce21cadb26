"""Graph passes of the export: the pixel normalisation moved after the layout op, exactly."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from convert.onnx_graph import normalise_after_layout


def pixels_model(channels: int, layout: str, offset: np.ndarray) -> onnx.ModelProto:
    """uint8 NHWC pixels -> Cast -> [Concat to 3] -> x*scale -> +offset -> NCHW -> Conv."""
    nodes = [helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT)]
    data = "f"
    if channels == 3:
        nodes.append(helper.make_node("Concat", ["f", "f", "f"], ["rgb"], axis=3))
        data = "rgb"
    nodes += [
        helper.make_node("Mul", [data, "scale"], ["scaled"]),
        helper.make_node("Add", ["offset", "scaled"], ["normalised"]),  # constant first: allowed
    ]
    if layout == "Reshape":
        nodes.append(helper.make_node("Reshape", ["normalised", "nchw_shape"], ["nchw"]))
    else:
        nodes.append(helper.make_node("Transpose", ["normalised"], ["nchw"], perm=[0, 3, 1, 2]))
    nodes.append(helper.make_node("Conv", ["nchw", "weights"], ["out"], strides=[4, 4],
                                  kernel_shape=[3, 3]))
    rng = np.random.default_rng(0)
    initializers = [
        numpy_helper.from_array(np.array(1 / 64, np.float32), "scale"),
        numpy_helper.from_array(offset.astype(np.float32), "offset"),
        numpy_helper.from_array(np.array([-1, 1, 32, 32], np.int64), "nchw_shape"),
        numpy_helper.from_array(rng.normal(size=(2, channels if channels == 3 else 1, 3, 3))
                                .astype(np.float32), "weights"),
    ]
    graph = helper.make_graph(
        nodes, "pixels",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", 32, 32, 1])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 2, 8, 8])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def run(model: onnx.ModelProto, pixels: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": pixels})[0]


@pytest.mark.parametrize(("channels", "layout"), [(1, "Reshape"), (3, "Transpose")])
def test_scalar_normalisation_moves_after_the_layout_op_bit_exactly(channels, layout):
    model = pixels_model(channels, layout, np.array(-2.0))
    pixels = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 1), dtype=np.uint8)
    before = run(model, pixels)

    assert normalise_after_layout(model) == 1
    onnx.checker.check_model(model, full_check=True)
    ops = [node.op_type for node in model.graph.node]
    assert ops.index(layout) < ops.index("Mul") < ops.index("Add") < ops.index("Conv")
    np.testing.assert_array_equal(run(model, pixels), before)


def test_per_channel_constants_stay_where_they_are():
    model = pixels_model(3, "Transpose", np.array([-103.9, -116.8, -123.7]))
    before = [node.op_type for node in model.graph.node]
    assert normalise_after_layout(model) == 0
    assert [node.op_type for node in model.graph.node] == before
