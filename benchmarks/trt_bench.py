"""TensorRT engines: median latency and throughput per batch size, with the GPU's name.

Run on the line PC (or any machine where `tensorrt` and `pycuda` import):

    .venv/bin/python benchmarks/trt_bench.py engines/r152-fp16.plan engines/r152-int8.plan \
        --onnx runs/r152/model.onnx

Each engine needs its manifest (PATH.json, written by `convert build-engine`). With `--onnx` the
table also shows the FLOPs per tile and per 1600x256 frame and the floor a GTX 1060 sets
(4.4 TFLOP/s FP32, about 4x that in INT8 through DP4A, 192 GB/s).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from convert.flops import count_flops
from edge.errors import SteelInspectError
from edge.inference.model import load_model
from edge.inference.tiling import tile_boxes

GTX1060_TFLOPS = {"fp32": 4.4, "fp16": 4.4, "int8": 17.6}  # SM 6.1 has no fast FP16
TILES_PER_FRAME = len(tile_boxes(256, 1600))


def time_batches(runtime, batch_sizes, repeats: int) -> list[dict]:
    rows = []
    spec = runtime.input_spec
    for batch in batch_sizes:
        if batch > spec.max_batch:
            continue
        tiles = np.random.default_rng(0).integers(
            0, 256, size=(batch, *spec.tile_shape), dtype=np.uint8
        )
        runtime.infer(tiles)  # warm-up at this shape
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            runtime.infer(tiles)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        rows.append({"batch": batch, "ms": median * 1e3, "tiles_per_s": batch / median})
    return rows


def floor_table(onnx_path: Path) -> str:
    flops = count_flops(onnx_path)
    lines = [f"FLOPs per tile: {flops / 1e9:.1f} G; per 1600x256 frame "
             f"({TILES_PER_FRAME} tiles): {flops * TILES_PER_FRAME / 1e9:.1f} G"]
    for precision, tflops in GTX1060_TFLOPS.items():
        ms = flops * TILES_PER_FRAME / (tflops * 1e12) * 1e3
        lines.append(f"GTX 1060 compute floor {precision}: {ms:.1f} ms/frame "
                     f"({1e3 / ms:.0f} frames/s at 100% of {tflops} TFLOP/s)")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engines", nargs="+", type=Path)
    parser.add_argument("--onnx", type=Path, help="the ONNX the engines came from (FLOP count)")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--max-batch", type=int, default=8)
    args = parser.parse_args(argv)
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        print("trt_bench: tensorrt is not importable here; run it on the line PC", file=sys.stderr)
        return 2
    try:
        for path in args.engines:
            model = load_model(path, "tensorrt", max_batch=args.max_batch)
            manifest = model.manifest or {}
            gpu = manifest.get("gpu", {})
            print(f"\n{path.name}: {gpu.get('name', '?')} (SM {gpu.get('compute_capability', '?')})"
                  f", precision requested {manifest.get('requested_precision')}, "
                  f"effective {manifest.get('effective_precision')}")
            print(f"{'batch':>5} {'median ms':>10} {'tiles/s':>9} {'frames/s':>9}")
            for row in time_batches(model.runtime, range(1, args.max_batch + 1), args.repeats):
                print(f"{row['batch']:>5} {row['ms']:>10.2f} {row['tiles_per_s']:>9.1f} "
                      f"{row['tiles_per_s'] / TILES_PER_FRAME:>9.1f}")
            model.close()
    except SteelInspectError as exc:
        print(f"trt_bench: error: {exc}", file=sys.stderr)
        return 2
    if args.onnx:
        print("\n" + floor_table(args.onnx))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
