"""ONNX Runtime candidates (CPU line PCs, and how build-engine is tested without a GPU).

- fp32: the exported ONNX itself;
- fp16: a float16 copy; the input Cast and the head (last MatMul/Gemm, bias, sigmoid) stay FP32
  and the output stays FP32 probabilities;
- int8: static QDQ quantisation (uint8 activations, int8 weights per channel: 7-bit unless the
  CPU has VNNI, see `edge.inference.cpuflags`) calibrated on training-split tiles; the head stays
  FP32.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto

from convert.errors import EngineBuildError
from convert.onnx_graph import consumers, graph_inputs, head_nodes, producers
from train.progress import Progress

log = logging.getLogger(__name__)

CALIBRATION_BATCH = 8


def build_fp32(onnx_path: Path, out: Path) -> None:
    shutil.copyfile(onnx_path, out)


def build_fp16(onnx_path: Path, out: Path) -> None:
    from onnxconverter_common import float16  # noqa: PLC0415

    model = onnx.load(str(onnx_path))
    keep = head_nodes(model) + _input_readers(model)
    log.info("float16 copy; kept in FP32: %s", ", ".join(keep))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = float16.convert_float_to_float16(
            model, keep_io_types=True, node_block_list=keep
        )
    if caught:
        log.info("%s", summarise_warnings(caught))
    restore_float_outputs(converted)
    onnx.checker.check_model(converted)
    onnx.save(converted, str(out))


def summarise_warnings(caught) -> str:
    """One line for the converter's warnings (one per clipped initializer: 212 on ResNet152)."""
    messages = [" ".join(str(w.message).split()) for w in caught]
    distinct = sorted(set(messages), key=messages.index)
    return (f"float16 conversion: {len(messages)} converter warnings ({len(distinct)} distinct), "
            f"first: {distinct[0][:160]}")


def _input_readers(model: onnx.ModelProto) -> list[str]:
    """The Casts reading the uint8 input: the converter would mistype their float output."""
    return [node.name for info in graph_inputs(model) for node in consumers(model, info.name)]


def restore_float_outputs(model: onnx.ModelProto) -> None:
    """Make every float16 graph output FP32 again without rounding it through float16.

    With a blocked head, onnxconverter-common ends the graph with a Cast to float16; that Cast is
    turned into a Cast to float (a no-op on the FP32 head output) and the output retyped.
    """
    by_output = producers(model)
    for output in model.graph.output:
        tensor_type = output.type.tensor_type
        if tensor_type.elem_type != TensorProto.FLOAT16:
            continue
        node = by_output.get(output.name)
        if node is None or node.op_type != "Cast":
            raise EngineBuildError(f"float16 output {output.name!r} is not written by a Cast")
        for attribute in node.attribute:
            if attribute.name == "to":
                attribute.i = TensorProto.FLOAT
        tensor_type.elem_type = TensorProto.FLOAT


class TileReader:
    """onnxruntime.quantization CalibrationDataReader over an array of uint8 tiles."""

    def __init__(self, input_name: str, tiles: np.ndarray, batch: int = CALIBRATION_BATCH):
        self.input_name = input_name
        self.tiles = tiles
        self.batch = batch
        self.position = 0
        self.progress: Progress | None = None  # ONNX Runtime runs each batch as it reads it

    def get_next(self) -> dict | None:
        if self.position >= len(self.tiles):
            if self.progress is not None:
                self.progress.close()
                self.progress = None
            return None
        if self.progress is None:
            self.progress = Progress(len(self.tiles), "INT8 calibration")
        chunk = self.tiles[self.position : self.position + self.batch]
        self.position += self.batch
        self.progress.update(len(chunk))
        return {self.input_name: np.ascontiguousarray(chunk)}

    def rewind(self) -> None:
        self.position = 0


def build_int8(onnx_path: Path, out: Path, tiles: np.ndarray, cache: Path | None = None,
               reduce_range: bool = True) -> None:
    from onnxruntime.quantization import (  # noqa: PLC0415
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: PLC0415

    class _Reader(TileReader, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(prefix=".quant-", dir=out.parent) as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(onnx_path), str(prepared))
        model = onnx.load(str(prepared))
        keep = head_nodes(model)
        log.info("INT8 QDQ on %d calibration tiles; kept in FP32: %s", len(tiles), ", ".join(keep))
        reader = _Reader(graph_inputs(model)[0].name, tiles)
        quantize_static(
            str(prepared), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            # 7-bit weights: uint8 x int8 products saturate on x86 CPUs without VNNI (AVX2 only);
            # without it the tiny test model lost 0.2-0.4 F1 there (docs/convert.md)
            reduce_range=reduce_range,
            nodes_to_exclude=keep, calibration_cache_path=str(cache) if cache else None,
        )
