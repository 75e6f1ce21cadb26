"""FLOP counting against a hand-computed convolution + matrix product."""

import onnx
from onnx import TensorProto, helper

from convert.flops import count_flops


def test_conv_and_matmul_flops_match_hand_count(tmp_path):
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 1, 3, 3], [0.1] * 36)
    dense = helper.make_tensor("d", TensorProto.FLOAT, [256, 3], [0.1] * 768)
    shape = helper.make_tensor("s", TensorProto.INT64, [2], [-1, 256])
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Reshape", ["c", "s"], ["r"]),
            helper.make_node("MatMul", ["r", "d"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=[weight, dense, shape],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    conv_macs = 4 * 8 * 8 * (1 * 3 * 3)  # outputs x (in-channels x kernel)
    matmul_macs = 3 * 256
    assert count_flops(path) == 2 * (conv_macs + matmul_macs)
    assert count_flops(path, batch=5) == 5 * 2 * (conv_macs + matmul_macs)
