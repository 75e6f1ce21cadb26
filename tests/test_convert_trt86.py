"""The TensorRT 8.6 ONNX-parser check and the float32-input variant TensorRT builds use."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from convert.onnx_graph import float_input_variant, graph_inputs, head_nodes
from convert.trt86 import SUPPORTED_OPS, blocking, check_tensorrt86
from tests.fixtures.convert import tile_batch


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def _model(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_exported_model_parses_on_tensorrt86_with_a_uint8_note(exported_onnx):
    findings = check_tensorrt86(onnx.load(str(exported_onnx)))
    assert blocking(findings) == []
    (note,) = findings
    assert note.op == "Cast" and "UINT8 input 'image'" in note.problem


def test_float_input_variant_is_clean_and_computes_the_same(exported_onnx):
    model = onnx.load(str(exported_onnx))
    variant = float_input_variant(model)
    (image,) = graph_inputs(variant)
    assert (image.name, image.dtype) == ("image", "float32")
    assert check_tensorrt86(variant) == []
    assert len(variant.graph.node) == len(model.graph.node) - 1  # the leading Cast is gone
    tiles = tile_batch(4)
    original = _session(model).run(None, {"image": tiles})[0]
    floats = _session(variant).run(None, {"image": tiles.astype(np.float32)})[0]
    np.testing.assert_allclose(floats, original, rtol=0, atol=1e-6)


def test_head_is_the_last_matmul_up_to_the_sigmoid(exported_onnx):
    model = onnx.load(str(exported_onnx))
    ops = {n.name: n.op_type for n in model.graph.node}
    names = head_nodes(model)
    head = [ops[name] for name in names if not name.startswith("cam/")]
    assert head[0] == "Sigmoid" and head[-1] in ("MatMul", "Gemm")
    assert "Conv" in {ops[name] for name in names if name.startswith("cam/")}  # the cam branch


def test_unsupported_ops_types_and_uint8_intermediates_are_named():
    nodes = [
        helper.make_node("Transpose", ["image"], ["t"], name="to_nchw", perm=[0, 3, 1, 2]),
        helper.make_node("Cast", ["t"], ["f"], name="to_float", to=TensorProto.FLOAT),
        helper.make_node("Hardmax", ["f"], ["h"], name="hardmax"),
        helper.make_node("Custom", ["h"], ["c"], name="plugin", domain="com.example"),
        helper.make_node("QuantizeLinear", ["c", "scale", "zero"], ["q"], name="quant"),
        helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["out"], name="dequant"),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", 4, 4, 1])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        [helper.make_tensor("scale", TensorProto.FLOAT, [], [0.1]),
         helper.make_tensor("zero", TensorProto.INT8, [], [3])],
    )
    problems = {(f.node, f.problem) for f in blocking(check_tensorrt86(model))}
    assert ("to_nchw", "reads UINT8 input 'image'; only a Cast may") in problems
    assert ("to_nchw", "produces UINT8 tensor 't'") in problems
    assert ("hardmax", "not in TensorRT 8.6's ONNX op table") in problems
    assert ("plugin", "custom domain 'com.example'") in problems
    assert ("quant", "non-zero zero point") in problems
    assert ("dequant", "non-zero zero point") in problems
    assert len(problems) == 6


def test_opset_above_17_and_the_8_6_additions():
    node = helper.make_node("LayerNormalization", ["x", "s"], ["y"], name="ln")
    model = _model(
        [node],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor("s", TensorProto.FLOAT, [4], [1.0] * 4)],
        opset=18,
    )
    (finding,) = check_tensorrt86(model)
    assert finding.op == "opset" and "18 > 17" in finding.problem
    assert {"LayerNormalization", "GroupNormalization", "IsInf"} <= SUPPORTED_OPS  # added in 8.6
    assert not {"Hardmax", "Unique", "DFT", "STFT", "SequenceAt"} & SUPPORTED_OPS
