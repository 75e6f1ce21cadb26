"""The class activation map as a second ONNX output: `cam` float32 [N, C, h, w].

Every model ends in global average pooling of the last feature map F + Dense (W, b) + sigmoid, so
`cam_c(y, x) = W_c . F(y, x) + b_c` is one 1x1 convolution of F, and its spatial mean is exactly
the logit the sigmoid reads. `add_cam_output` finds the pooling node behind the head's MatMul/Gemm
in the exported graph and adds that convolution, its nodes named `cam/...` so that the float16
and INT8 builders keep them in FP32 like the head.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

from convert.errors import ExportError
from convert.onnx_graph import CAM_PREFIX, HEAD_MATMUL_OPS, head_nodes, producers
from edge.inference.runtime.base import CAM_OUTPUT

POOL_PLUMBING = {"Reshape", "Squeeze", "Flatten", "Identity"}
CAM_IDENTITY_TOLERANCE = 1e-5


def sigmoid_of_mean(cam: np.ndarray) -> np.ndarray:
    """[N, C, h, w] logit maps -> [N, C] probabilities, as the model's head computes them."""
    logits = cam.astype(np.float64).mean(axis=(2, 3))
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def _attribute(node: onnx.NodeProto, name: str, default=None):
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _initializer(model: onnx.ModelProto, name: str) -> np.ndarray:
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    raise ExportError(f"head weight {name!r} is not a constant; cannot add the cam output")


def _dense(model: onnx.ModelProto) -> tuple[onnx.NodeProto, np.ndarray, np.ndarray]:
    """The head's matrix product, its weights [K, C] and bias [C]."""
    nodes = {node.name: node for node in model.graph.node}
    head = [nodes[name] for name in head_nodes(model)]
    matmuls = [n for n in head if n.op_type in HEAD_MATMUL_OPS]
    if not matmuls:
        raise ExportError("no MatMul/Gemm head before the output; cannot add the cam output")
    matmul = matmuls[0]
    weights = _initializer(model, matmul.input[1]).astype(np.float32)
    if matmul.op_type == "Gemm" and _attribute(matmul, "transB", 0):
        weights = weights.T
    bias = np.zeros(weights.shape[1], dtype=np.float32)
    if matmul.op_type == "Gemm" and len(matmul.input) > 2 and matmul.input[2]:
        bias = bias + _initializer(model, matmul.input[2]).reshape(-1)
    for node in head:
        if node.op_type == "Add":
            constant = next((i for i in node.input if i != matmul.output[0]
                             and any(t.name == i for t in model.graph.initializer)), None)
            if constant is not None:
                bias = bias + _initializer(model, constant).reshape(-1)
    return matmul, weights, bias


def _feature_map(model: onnx.ModelProto, matmul: onnx.NodeProto) -> tuple[str, bool]:
    """(name of the pooled feature map, True if NHWC) behind the head's input."""
    by_output = producers(model)
    node = by_output.get(matmul.input[0])
    while node is not None and node.op_type in POOL_PLUMBING:
        node = by_output.get(node.input[0])
    if node is None:
        raise ExportError("the head's input is not a pooled feature map; cannot add the cam")
    if node.op_type == "GlobalAveragePool":
        return node.input[0], False
    if node.op_type == "ReduceMean":
        axes = _attribute(node, "axes")
        if axes is None and len(node.input) > 1:
            axes = _initializer(model, node.input[1]).tolist()
        if sorted(axes or []) == [1, 2]:
            return node.input[0], True
        if sorted(axes or []) == [2, 3]:
            return node.input[0], False
    raise ExportError(f"the head reads {node.op_type} {node.name!r}, not a global average "
                      "pooling; cannot add the cam output")


def _spatial_shape(model: onnx.ModelProto, tensor: str, nhwc: bool) -> tuple[int, int]:
    inferred = shape_inference.infer_shapes(model)
    for value in (*inferred.graph.value_info, *inferred.graph.output):
        if value.name == tensor:
            dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
            h, w = (dims[1], dims[2]) if nhwc else (dims[2], dims[3])
            if h > 0 and w > 0:
                return h, w
    raise ExportError(f"the spatial size of the feature map {tensor!r} is unknown")


def add_cam_output(model: onnx.ModelProto) -> tuple[int, int]:
    """Add the `cam` output in place; returns its (h, w)."""
    if any(o.name == CAM_OUTPUT for o in model.graph.output):
        raise ExportError(f"the graph already has an output named {CAM_OUTPUT!r}")
    matmul, weights, bias = _dense(model)
    features, nhwc = _feature_map(model, matmul)
    height, width = _spatial_shape(model, features, nhwc)
    classes = weights.shape[1]
    kernel = np.ascontiguousarray(weights.T.reshape(classes, weights.shape[0], 1, 1))
    model.graph.initializer.extend([numpy_helper.from_array(kernel, f"{CAM_PREFIX}weights"),
                                    numpy_helper.from_array(bias, f"{CAM_PREFIX}bias")])
    source = features
    if nhwc:
        source = f"{CAM_PREFIX}features_nchw"
        model.graph.node.append(helper.make_node("Transpose", [features], [source],
                                                 name=f"{CAM_PREFIX}transpose", perm=[0, 3, 1, 2]))
    model.graph.node.append(helper.make_node(
        "Conv", [source, f"{CAM_PREFIX}weights", f"{CAM_PREFIX}bias"], [CAM_OUTPUT],
        name=f"{CAM_PREFIX}conv", kernel_shape=[1, 1]))
    model.graph.output.append(helper.make_tensor_value_info(
        CAM_OUTPUT, TensorProto.FLOAT, ["N", classes, height, width]))
    return height, width
