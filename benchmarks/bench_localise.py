"""Defect localisation from CAM: box quality on generated frames and the cost per defect.

    .venv/bin/python benchmarks/bench_localise.py RUN_DIR|MODEL.onnx [--frames 120]
        [--seeds 1234,999] [--precision-target 0.8 --calibration-seed 4242]
        [--thresholds 0.5,0.5,0.5] [--threads 1] [--json]

Takes a run folder exported by `convert export-onnx` (its model.onnx) or an ONNX file with
modelcard.json beside it, of any architecture (tiny or a ResNet trained elsewhere); the
model must have the `cam` output. Uses the card's thresholds (or --thresholds). The seeds must
not be ones the model was trained on (the test fixture trains on seed 7, the demo on seed 1).
Prints, per seed, the figures recorded in docs/performance.md "Defect localisation": overlap
precision, coverage and median box area against the tile, CAM boxes and tile boxes of the
same defects side by side, overall and per class; then the time
`edge.defects.localise.localise` takes per defect on one core.

With --precision-target P, each class's threshold is raised to the lowest value of a grid
(0.30-0.95) whose CAM boxes reach overlap precision P on --calibration-seed (a third seed, never
one of --seeds: nothing is tuned on the frames it is measured on), and the seeds are measured
again with those thresholds: what a precision-first threshold choice costs in coverage.
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
from train.localisation import LocalisationReport, measure

TIMING_REPEATS = 2000
THRESHOLD_GRID = tuple(round(float(t), 2) for t in np.arange(0.30, 0.96, 0.05))


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


def model_path(path: Path) -> Path:
    """The ONNX of a run folder or the file itself; a clear error when neither has a card."""
    onnx = path / "model.onnx" if path.is_dir() else path
    if not onnx.is_file():
        raise SystemExit(f"bench_localise: {onnx}: no such ONNX (run convert export-onnx)")
    if not onnx.with_name(MODELCARD_FILE).is_file():
        raise SystemExit(f"bench_localise: {onnx.with_name(MODELCARD_FILE)}: missing")
    return onnx


def table(report: LocalisationReport, class_names: dict[int, str]) -> list[str]:
    rows = [("all", report.true_defects, report.cam, report.tiles)]
    rows += [(class_names[class_id], figures["true_defects"], figures["cam"], figures["tiles"])
             for class_id, figures in report.per_class.items()]
    lines = [f"{'class':<16}{'true':>5}{'found':>6}  {'precision CAM/tiles':<20}"
             f"{'coverage CAM/tiles':<20}median box/tile CAM/tiles"]
    for name, truths, cam, tiles in rows:
        lines.append(f"{name:<16}{truths:>5}{cam['boxes']:>6}  "
                     f"{cam['overlap_precision']:.3f}/{tiles['overlap_precision']:.3f}{'':<9}"
                     f"{cam['coverage']:.3f}/{tiles['coverage']:.3f}{'':<9}"
                     f"{cam['median_area_vs_tile']:.3f}/{tiles['median_area_vs_tile']:.3f}")
    return lines


def precision_thresholds(runtime, class_ids, base: list[float], seed: int, frames: int,
                         target: float) -> list[float]:
    """Per class, its threshold raised to the lowest grid value whose CAM boxes reach `target`
    overlap precision on `seed` (never lowered; the grid's top where none does). The classes are
    independent, so one pass per grid value scores them all."""
    chosen: dict[int, float] = {}
    for g in THRESHOLD_GRID:
        cuts = [max(t, g) for t in base]
        report = measure(runtime, class_ids, cuts, seed, frames)
        for class_id, cut in zip(class_ids, cuts, strict=True):
            precision = report.per_class[class_id]["cam"]["overlap_precision"]
            if class_id not in chosen and precision >= target:
                chosen[class_id] = cut
        if len(chosen) == len(class_ids):
            break
    return [round(chosen.get(class_id, THRESHOLD_GRID[-1]), 2) for class_id in class_ids]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="run folder or ONNX file (modelcard.json beside)")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--seeds", default="1234,999")
    parser.add_argument("--thresholds", default=None, help="per class, instead of the card's")
    parser.add_argument("--precision-target", type=float, default=None)
    parser.add_argument("--calibration-seed", type=int, default=4242)
    parser.add_argument("--threads", type=int, default=1,
                        help="ONNX Runtime threads (more for a ResNet: ~10 GFLOP per tile)")
    parser.add_argument("--json", action="store_true", help="also print the full reports")
    args = parser.parse_args()
    onnx = model_path(args.model)
    card = ModelCard.load(onnx.with_name(MODELCARD_FILE))
    class_ids = [c.id for c in card.classes]
    names = {c.id: c.name for c in card.classes}
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.precision_target is not None and args.calibration_seed in seeds:
        raise SystemExit("bench_localise: --calibration-seed must not be one of --seeds")
    thresholds = ([float(t) for t in args.thresholds.split(",")] if args.thresholds
                  else card.thresholds)
    with load_runtime("onnxruntime", onnx, max_batch=8, threads=args.threads) as runtime:
        runs = [("thresholds", thresholds)]
        if args.precision_target is not None:
            calibrated = precision_thresholds(runtime, class_ids, thresholds,
                                              args.calibration_seed, args.frames,
                                              args.precision_target)
            runs.append((f"precision >= {args.precision_target:g} on seed "
                         f"{args.calibration_seed}", calibrated))
        for label, cuts in runs:
            for seed in seeds:
                report = measure(runtime, class_ids, cuts, seed, args.frames)
                print(f"\n{card.name} {card.version}, seed {seed}, {args.frames} frames, "
                      f"{label} {cuts}, no-cell boxes {report.no_cell_boxes}")
                print("\n".join(table(report, names)))
                if args.json:
                    print(json.dumps({"seed": seed, "thresholds": cuts, **report.as_dict()}))
    rng = np.random.default_rng(0)
    cost = {f"{n}_tiles_us": round(localise_cost_us(n, rng), 1) for n in (1, 2, 7)}
    print(f"\nlocalise cost per defect, one core: {cost}")


if __name__ == "__main__":
    main()
