"""Defect localisation from CAM: box quality on generated frames and the cost per defect.

    .venv/bin/python benchmarks/bench_localise.py RUN_DIR/model.onnx [--frames 120] [--seed 1234]

Uses the ONNX's `cam` output and the card's thresholds (modelcard.json beside the ONNX); the
seed must not be one the model was trained on (the test fixture trains on seed 7). Prints the
figures recorded in docs/performance.md "Defect localisation": overlap precision, coverage and
median box area against the tile for CAM boxes and tile boxes side by side, and the time
`edge.defects.localise.localise` takes per defect on one core.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from edge.defects.localise import localise
from edge.inference.modelcard import MODELCARD_FILE, ModelCard
from edge.inference.runtime import load_runtime
from edge.inference.tiling import tile_frame
from train.localisation import measure

TIMING_REPEATS = 2000


def localise_cost_us(tiles_per_defect: int, rng) -> float:
    """Median microseconds of one localise call on a defect of the first that many tiles of a
    1600x256 frame as the daemon tiles it (all 7: the last tile overlaps its neighbour)."""
    boxes = tile_frame(np.zeros((256, 1600), np.uint8), 256).boxes[:tiles_per_defect]
    cams = rng.normal(0, 3, (len(boxes), 8, 8)).astype(np.float32)
    times = []
    for _ in range(TIMING_REPEATS):
        started = time.perf_counter()
        localise(boxes, cams, 0.5)
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx", type=Path)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    card = ModelCard.load(args.onnx.with_name(MODELCARD_FILE))
    with load_runtime("onnxruntime", args.onnx, max_batch=8, threads=1) as runtime:
        report = measure(runtime, [c.id for c in card.classes], card.thresholds, args.seed,
                         args.frames)
    rng = np.random.default_rng(0)
    cost = {f"{n}_tiles_us": round(localise_cost_us(n, rng), 1) for n in (1, 2, 7)}
    print(json.dumps({"model": f"{card.name} {card.version}", "seed": args.seed,
                      **report.as_dict(), "localise_cost": cost}, indent=2))


if __name__ == "__main__":
    main()
