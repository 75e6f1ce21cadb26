"""What TensorRT 8.6's ONNX parser (onnx-tensorrt release 8.6) would refuse, checked without it.

The line's GTX 1060 (Pascal, SM 6.1) is supported up to TensorRT 8.6, so every export is checked
against that parser. The operator table is written from onnx-tensorrt's docs/operators.md (8.5 GA
list) plus the 8.6 EA additions (GroupNormalization, LayerNormalization, IsInf) in its changelog.
Data types: FLOAT, FLOAT16, INT8, INT32, BOOL natively; INT64 and DOUBLE are cast down; UINT8 only
as a network input or output tensor (the parser refuses any UINT8 tensor produced inside the
graph), and a UINT8 input can only be read by a Cast to a float type.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import TensorProto, shape_inference

from convert.onnx_graph import graph_inputs

MAX_OPSET = 17

SUPPORTED_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast
Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace
DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather
GatherElements GatherND Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual
GridSample GroupNormalization GRU HardSigmoid HardSwish Identity If ImageScaler
InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax
Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mod Mul
Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear
RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2
ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare
Relu Reshape Resize ReverseSequence RNN RoiAlign Round ScaledTanh Scan Scatter ScatterElements
ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign
SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu
Unsqueeze Upsample Where Xor
""".split())

SUPPORTED_TYPES = frozenset({
    TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT8, TensorProto.INT32, TensorProto.BOOL,
    TensorProto.INT64, TensorProto.DOUBLE,  # cast down to INT32 / FLOAT by the parser
})
FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16})
ZERO_POINT_OPS = {"QuantizeLinear": 2, "DequantizeLinear": 2}


@dataclass(frozen=True)
class Finding:
    """One thing the TensorRT 8.6 parser would refuse (`blocking`) or handle specially."""

    node: str
    op: str
    problem: str
    blocking: bool = True

    def __str__(self) -> str:
        kind = "unsupported" if self.blocking else "note"
        return f"{kind}: {self.op} {self.node!r}: {self.problem}"


def check_tensorrt86(model: onnx.ModelProto) -> list[Finding]:
    """Everything in `model` that TensorRT 8.6's ONNX parser does not take as it is."""
    findings = _opset_findings(model)
    findings += _op_findings(model)
    findings += _type_findings(model)
    findings += _zero_point_findings(model)
    return findings


def blocking(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.blocking]


def _opset_findings(model: onnx.ModelProto) -> list[Finding]:
    found = []
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > MAX_OPSET:
            found.append(Finding("(model)", "opset", f"opset {opset.version} > {MAX_OPSET}"))
    return found


def _op_findings(model: onnx.ModelProto) -> list[Finding]:
    found = []
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            found.append(Finding(node.name, node.op_type, f"custom domain {node.domain!r}"))
        elif node.op_type not in SUPPORTED_OPS:
            found.append(Finding(node.name, node.op_type, "not in TensorRT 8.6's ONNX op table"))
    return found


def _tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    known = {opset.domain for opset in copy.opset_import}
    for domain in {node.domain for node in copy.graph.node} - known - {"ai.onnx"}:
        copy.opset_import.append(onnx.helper.make_opsetid(domain, 1))  # lets inference skip it
    try:
        inferred = shape_inference.infer_shapes(copy)
    except Exception:  # a model too odd for shape inference: check only the declared types
        inferred = model
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in graph.value_info}
    types.update({v.name: v.type.tensor_type.elem_type for v in (*graph.input, *graph.output)})
    types.update({init.name: init.data_type for init in graph.initializer})
    return types


def _type_findings(model: onnx.ModelProto) -> list[Finding]:
    types = _tensor_types(model)
    io_names = {v.name for v in (*model.graph.input, *model.graph.output)}
    found = []
    for node in model.graph.node:
        for tensor in node.output:
            elem = types.get(tensor)
            if elem is None or elem in SUPPORTED_TYPES:
                continue
            if elem == TensorProto.UINT8 and tensor in io_names:
                continue
            what = TensorProto.DataType.Name(elem)
            found.append(Finding(node.name, node.op_type, f"produces {what} tensor {tensor!r}"))
    found += _uint8_input_findings(model)
    return found


def _uint8_input_findings(model: onnx.ModelProto) -> list[Finding]:
    found = []
    for info in graph_inputs(model):
        if info.dtype != "uint8":
            continue
        for node in model.graph.node:
            if info.name not in node.input:
                continue
            to = next((a.i for a in node.attribute if a.name == "to"), None)
            if node.op_type == "Cast" and to in FLOAT_TYPES:
                found.append(Finding(
                    node.name, node.op_type,
                    f"UINT8 input {info.name!r} (TensorRT 8.6 takes it only into a Cast; "
                    "TensorRT builds use the float32-input variant)",
                    blocking=False,
                ))
            else:
                found.append(Finding(
                    node.name, node.op_type, f"reads UINT8 input {info.name!r}; only a Cast may"
                ))
    return found


def _zero_point_findings(model: onnx.ModelProto) -> list[Finding]:
    initializers = {init.name: init for init in model.graph.initializer}
    found = []
    for node in model.graph.node:
        index = ZERO_POINT_OPS.get(node.op_type)
        if index is None or len(node.input) <= index or not node.input[index]:
            continue
        zero_point = initializers.get(node.input[index])
        if zero_point is not None and onnx.numpy_helper.to_array(zero_point).any():
            found.append(Finding(node.name, node.op_type, "non-zero zero point"))
    return found
