"""`convert export-onnx --run RUN_DIR`: write RUN_DIR/model.onnx, exact to the Keras model."""

from __future__ import annotations

import argparse
from pathlib import Path


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_arguments(parser) -> None:
    parser.add_argument("--run", required=True, type=Path, help="run folder from `train fit`")
    parser.add_argument("--opset", type=int, default=17, choices=range(13, 18), metavar="{13..17}",
                        help="ONNX opset (default 17, the newest TensorRT 8.6 parses)")
    parser.add_argument("--data", type=Path, default=None,
                        help="data folder, if it moved since training (default: the card's)")
    parser.add_argument("--tiles", type=_positive, default=32,
                        help="tiles of the numerical check (default 32)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: all)")


def run(args) -> int:
    from convert.export import PARITY_TOLERANCE, export_onnx  # noqa: PLC0415
    from convert.trt86 import blocking  # noqa: PLC0415

    result = export_onnx(args.run, args.opset, args.data, args.tiles, args.threads)
    print(f"wrote {result.path}")
    print(f"parity: max abs probability difference to Keras {result.max_abs_diff:.2e} "
          f"(limit {PARITY_TOLERANCE:g}) on {result.tiles} {result.tiles_source}")
    problems = blocking(result.findings)
    notes = [f for f in result.findings if not f.blocking]
    for finding in result.findings:
        print(f"TensorRT 8.6 {finding}")
    if problems:
        print(f"TensorRT 8.6: {len(problems)} unsupported node(s); the ONNX Runtime backend "
              "still works, a TensorRT 8.6 build will fail")
    else:
        print(f"TensorRT 8.6: every op is supported ({len(notes)} note(s))")
    return 0

