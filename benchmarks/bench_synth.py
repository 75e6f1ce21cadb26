"""Throughput of the synthetic data generator on one core (`train synth` without the CLI).

    .venv/bin/python benchmarks/bench_synth.py [--images 200] [--width 1600] [--height 256]

Prints ms/image per stage and images/s for the whole generator (render + JPEG + RLE + file
writes), both in wall time and in CPU time of this process; on a shared machine the CPU-time
figure is what one free core would give.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from train.data import rle, synth  # noqa: E402


def stage_times(n: int, width: int, height: int, seed: int) -> dict[str, float]:
    ids = synth.make_image_ids(seed, n)
    totals = {"render": 0.0, "jpeg": 0.0, "rle": 0.0}
    clock = time.process_time
    for i, image_id in enumerate(ids):
        t0 = clock()
        image = synth.render(seed, i, image_id, width, height)
        t1 = clock()
        synth.encode_jpeg(image.image)
        t2 = clock()
        for mask in image.masks:
            if mask.any():
                rle.encode(mask)
        t3 = clock()
        totals["render"] += t1 - t0
        totals["jpeg"] += t2 - t1
        totals["rle"] += t3 - t2
    return {k: v / n * 1000 for k, v in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    load = os.getloadavg()[0]
    synth.render(args.seed, 0, "warmup.jpg", args.width, args.height)
    with tempfile.TemporaryDirectory() as tmp:
        start, start_cpu = time.perf_counter(), time.process_time()
        synth.generate(tmp, args.images, args.seed, args.width, args.height)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - start_cpu
    stages = stage_times(min(args.images, 100), args.width, args.height, args.seed)
    print(f"synthetic generator, {args.width}x{args.height}, {args.images} images, 1 thread")
    print(f"numpy {np.__version__}, opencv {cv2.__version__}")
    print(f"load average before: {load:.2f}")
    print(f"{'stage':<24}{'CPU ms/image':>14}")
    for name, ms in stages.items():
        print(f"{name:<24}{ms:>14.2f}")
    print(f"{'generate (all, files)':<24}{cpu / args.images * 1000:>14.2f}")
    print(f"images/s: {args.images / cpu:.1f} per CPU second, {args.images / elapsed:.1f} wall")


if __name__ == "__main__":
    main()
