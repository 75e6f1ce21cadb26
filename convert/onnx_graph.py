"""ONNX graph helpers shared by export, the engine builders and the checks (onnx/numpy only)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from convert.errors import EngineBuildError
from edge.errors import ModelError
from edge.inference.runtime.base import CAM_OUTPUT

# Ops that may sit between the last matrix product and the output (bias, activation, plumbing).
HEAD_TAIL_OPS = {"Sigmoid", "Add", "Identity", "Cast", "Reshape", "Squeeze", "Flatten"}
HEAD_MATMUL_OPS = {"MatMul", "Gemm"}
CAM_PREFIX = "cam/"  # names of the nodes convert.cam adds for the `cam` output


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # numpy-style name: "uint8", "float32", ...
    shape: list  # ints, with a string for a dynamic dimension (e.g. "N")

    def as_dict(self) -> dict:
        return asdict(self)


def load_onnx(path: Path) -> onnx.ModelProto:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: ONNX model not found; run convert export-onnx first")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise ModelError(f"{path}: not a readable ONNX model: {exc}") from None


def dtype_name(elem_type: int) -> str:
    return str(helper.tensor_dtype_to_np_dtype(elem_type))


def _tensor_info(value: onnx.ValueInfoProto) -> TensorInfo:
    tensor_type = value.type.tensor_type
    shape = [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in tensor_type.shape.dim
    ]
    return TensorInfo(value.name, dtype_name(tensor_type.elem_type), shape)


def graph_inputs(model: onnx.ModelProto) -> list[TensorInfo]:
    """Real inputs (initializers listed as inputs by old exporters are left out)."""
    initializers = {init.name for init in model.graph.initializer}
    return [_tensor_info(v) for v in model.graph.input if v.name not in initializers]


def graph_outputs(model: onnx.ModelProto) -> list[TensorInfo]:
    return [_tensor_info(v) for v in model.graph.output]


def check_contract(model: onnx.ModelProto, card, where) -> None:
    """One uint8 [N, H, W, C] input and one float32 [N, classes] output, as the card says, and
    optionally a second output `cam` float32 [N, classes, h, w]."""
    inputs, outputs = graph_inputs(model), graph_outputs(model)
    tile = [card.input.height, card.input.width, card.input.channels]
    if len(inputs) != 1 or inputs[0].dtype != "uint8" or inputs[0].shape[1:] != tile:
        found = ", ".join(f"{i.name} {i.dtype} {i.shape}" for i in inputs)
        raise ModelError(f"{where}: input {found} does not match the model card "
                         f"(uint8 [N, {', '.join(map(str, tile))}])")
    classes = len(card.classes)
    if (len(outputs) not in (1, 2) or outputs[0].dtype != "float32"
            or outputs[0].shape[1:] != [classes]):
        found = ", ".join(f"{o.name} {o.dtype} {o.shape}" for o in outputs)
        raise ModelError(f"{where}: output {found} does not match the model card "
                         f"(float32 [N, {classes}] for {classes} classes)")
    if len(outputs) == 2:
        cam = outputs[1]
        if (cam.name != CAM_OUTPUT or cam.dtype != "float32" or len(cam.shape) != 4
                or cam.shape[1] != classes or not all(isinstance(d, int) for d in cam.shape[2:])):
            raise ModelError(f"{where}: second output {cam.name} {cam.dtype} {cam.shape} is not "
                             f"{CAM_OUTPUT!r} float32 [N, {classes}, h, w]")


def producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output}


def consumers(model: onnx.ModelProto, tensor: str) -> list[onnx.NodeProto]:
    return [node for node in model.graph.node if tensor in node.input]


def head_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the classification head: output back to (and including) the last MatMul/Gemm.

    Quantisation and float16 conversion leave these in FP32: compressing the sigmoid's input moves
    scores across the per-class thresholds. The cam branch (nodes named cam/...) is included.
    """
    by_output = producers(model)
    names: list[str] = []
    for output in model.graph.output:
        node = by_output.get(output.name)
        while node is not None and node.op_type in HEAD_TAIL_OPS | HEAD_MATMUL_OPS:
            names.append(node.name)
            if node.op_type in HEAD_MATMUL_OPS:
                break
            node = by_output.get(node.input[0])
    return names + [node.name for node in model.graph.node if node.name.startswith(CAM_PREFIX)]


def name_unnamed_nodes(model: onnx.ModelProto) -> None:
    """Give every node a unique name: block lists and parser errors refer to nodes by name."""
    seen = {node.name for node in model.graph.node if node.name}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in seen:
                name += "_"
            node.name = name
            seen.add(name)


def float_input_variant(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose uint8 input is float32 pixels (0..255, values unchanged).

    TensorRT 8.6 takes UINT8 only as a network I/O tensor whose reader is a Cast (no UINT8
    intermediate tensors), while float32 input works with every TensorRT version and precision;
    so TensorRT engines take float32 pixels and the runtime casts on the host (docs/convert.md).
    Every Cast-to-float32 that reads the input is removed and its readers read the input.
    """
    variant = onnx.ModelProto()
    variant.CopyFrom(model)
    inputs = graph_inputs(variant)
    if len(inputs) != 1:
        raise EngineBuildError(f"expected one model input, found {len(inputs)}")
    name = inputs[0].name
    value = next(v for v in variant.graph.input if v.name == name)
    if value.type.tensor_type.elem_type == TensorProto.FLOAT:
        return variant
    if value.type.tensor_type.elem_type != TensorProto.UINT8:
        raise EngineBuildError(f"input {name!r} is {inputs[0].dtype}; expected uint8 pixels")
    for reader in consumers(variant, name):
        if reader.op_type != "Cast":
            raise EngineBuildError(
                f"input {name!r} feeds {reader.op_type} node {reader.name!r}, not a Cast; "
                "cannot make the float32-input TensorRT variant"
            )
        to = next(a.i for a in reader.attribute if a.name == "to")
        if to == TensorProto.FLOAT:
            _bypass(variant, reader, name)
    value.type.tensor_type.elem_type = TensorProto.FLOAT
    onnx.checker.check_model(variant)
    return variant


def _bypass(model: onnx.ModelProto, node: onnx.NodeProto, replacement: str) -> None:
    old = node.output[0]
    if old in {o.name for o in model.graph.output}:
        raise EngineBuildError(f"Cast node {node.name!r} writes a graph output; cannot bypass it")
    for reader in model.graph.node:
        for i, name in enumerate(reader.input):
            if name == old:
                reader.input[i] = replacement
    model.graph.node.remove(node)
    for value in [v for v in model.graph.value_info if v.name == old]:
        model.graph.value_info.remove(value)


LAYOUT_OPS = {"Reshape", "Transpose"}
SCALE_OPS = {"Mul", "Add", "Sub", "Div"}


def normalise_after_layout(model: onnx.ModelProto) -> int:
    """Move the layout op (NHWC -> NCHW Reshape/Transpose) ahead of the scalar normalisation.

    tf2onnx leaves the Rescaling layer (x * scale + offset, scalar constants) on NHWC pixels,
    whose innermost axis is the 1 or 3 channels; ONNX Runtime's broadcasting loop then runs a
    call per pixel, and on the tiny model these two ops took 80 % of the time. A scalar
    elementwise op commutes with any layout op, so the outputs are bit-identical; the export's
    parity check still confirms it. Returns how many chains were moved.
    """
    moved = 0
    by_output = producers(model)
    initializers = {init.name: init for init in model.graph.initializer}
    for layout in [n for n in model.graph.node if n.op_type in LAYOUT_OPS]:
        chain = _scalar_chain_before(model, layout, by_output, initializers)
        if not chain:
            continue
        source = chain[0].input[_data_input(chain[0], initializers)]
        layout_out = layout.output[0]
        nchw = layout_out + "/before_normalisation"
        layout.input[0], layout.output[0] = source, nchw
        chain[0].input[_data_input(chain[0], initializers)] = nchw
        stale = {node.output[0] for node in chain} | {layout_out}
        chain[-1].output[0] = layout_out
        for value in [v for v in model.graph.value_info if v.name in stale]:
            model.graph.value_info.remove(value)  # their shapes changed; runtimes re-infer them
        _place_before(model, layout, chain[0])
        moved += 1
        by_output = producers(model)
    return moved


def _data_input(node: onnx.NodeProto, initializers: dict) -> int:
    return 0 if node.input[0] not in initializers else 1


def _scalar_chain_before(model, layout, by_output, initializers) -> list[onnx.NodeProto]:
    """The Mul/Add/Sub/Div nodes with one scalar constant that feed only `layout`, in order."""
    chain: list[onnx.NodeProto] = []
    node = by_output.get(layout.input[0])
    while node is not None and node.op_type in SCALE_OPS and len(node.input) == 2:
        constants = [name for name in node.input if name in initializers]
        if len(constants) != 1 or onnx.numpy_helper.to_array(initializers[constants[0]]).size != 1:
            break
        if len(consumers(model, node.output[0])) != 1:
            break
        chain.insert(0, node)
        node = by_output.get(node.input[_data_input(node, initializers)])
    return chain


def _place_before(model: onnx.ModelProto, node: onnx.NodeProto, anchor: onnx.NodeProto) -> None:
    """Keep the node list topologically sorted: `node` now runs before `anchor`."""
    nodes = list(model.graph.node)
    nodes.remove(node)
    nodes.insert(nodes.index(anchor), node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
