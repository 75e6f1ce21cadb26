"""Count the multiply-accumulate work of an ONNX model per tile (numpy/onnx only).

Convolutions and matrix products dominate a ResNet, so FLOPs = 2 x their multiply-accumulates;
element-wise ops, pooling and batch norm (folded into convolutions by every engine) are ignored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference


def _static_shapes(model: onnx.ModelProto, batch: int) -> dict[str, list[int]]:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = batch
    inferred = shape_inference.infer_shapes(model)
    shapes = {}
    values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    for value in values:
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else 0 for d in dims]
    for init in inferred.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def _conv_macs(node, shapes) -> int:
    out_shape = shapes.get(node.output[0])
    weight_shape = shapes.get(node.input[1])
    if not out_shape or not weight_shape:
        return 0
    # weight [M, C/group, kh, kw]: each output element needs C/group * kh * kw MACs
    return int(np.prod(out_shape)) * int(np.prod(weight_shape[1:]))


def _matmul_macs(node, shapes) -> int:
    a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
    out = shapes.get(node.output[0])
    if not a or not b or not out:
        return 0
    inner = a[-1] if not (node.op_type == "Gemm" and _attr(node, "transA")) else a[-2]
    return int(np.prod(out)) * int(inner)


def _attr(node, name: str) -> int:
    return next((a.i for a in node.attribute if a.name == name), 0)


def count_flops(path: Path, batch: int = 1) -> int:
    """FLOPs (2 x MACs) of one forward pass of `batch` inputs."""
    model = onnx.load(str(path))
    shapes = _static_shapes(model, batch)
    macs = 0
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvTranspose"):
            macs += _conv_macs(node, shapes)
        elif node.op_type in ("MatMul", "Gemm"):
            macs += _matmul_macs(node, shapes)
    return 2 * macs
