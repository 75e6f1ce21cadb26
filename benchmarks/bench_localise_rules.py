"""Can the CAM tell the model's false alarms from true defects? A rule against raised thresholds.

    .venv/bin/python benchmarks/bench_localise_rules.py RUN_DIR/model.onnx [--frames 120]
        [--seeds 1234,999]

On generated frames of seeds the model never saw (the test fixture trains on seed 7), the
defects of `bench_localise.py` (passing tiles grouped, CAM boxes by `edge.defects.localise`) are
scored (overlap precision, coverage; docs/performance.md "Defect localisation") under:
- the card's thresholds;
- the thresholds raised by a factor (what tuning the thresholds does: the baseline any rule must
  beat at the same coverage);
- the CAM peak rule: a defect is kept only if its strongest CAM cell reaches the class's cell
  level `cam_level(t)` by at least M logits (M swept).
The model runs once per frame; the rules are applied to its stored outputs. Prints one table per
seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from edge.defects.localise import cam_level, localise
from edge.inference.modelcard import MODELCARD_FILE, ModelCard
from edge.inference.runtime import load_runtime
from edge.inference.tiling import tile_frame
from train.localisation import generated_frame, tile_groups, union_box

THRESHOLD_FACTORS = (1.0, 1.1, 1.2, 1.3, 1.4, 1.5)
PEAK_MARGINS = (2.0, 4.0, 6.0, 8.0, 10.0, 12.0)
MIN_TRUE_PX = 16


def model_outputs(runtime, seed: int, frames: int):
    """Per frame: (tile boxes, probabilities [n, C], cam [n, C, h, w], true masks [C, H, W])."""
    for index in range(frames):
        frame, masks = generated_frame(seed, index, 1600, 256, 0.3)
        tiles = tile_frame(frame, runtime.input_spec.height)
        probabilities, cam = runtime.infer_all_with_cam(tiles.stack()[..., None])
        yield tiles.boxes, probabilities, cam, masks


def score(outputs, class_ids, thresholds, margin: float | None) -> tuple[int, float, float]:
    """(boxes, overlap precision, coverage) with these thresholds and peak margin (None: off)."""
    boxes = hits = truths = covered = 0
    for tile_boxes, probabilities, cam, masks in outputs:
        for c, (class_id, threshold) in enumerate(zip(class_ids, thresholds, strict=True)):
            mask = masks[class_id - 1]
            count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
            real = [k for k in range(1, count) if stats[k, cv2.CC_STAT_AREA] >= MIN_TRUE_PX]
            truths += len(real)
            kept = []
            for group in tile_groups(probabilities[:, c] >= threshold, tile_boxes):
                if margin is not None and cam[group, c].max() < cam_level(threshold) + margin:
                    continue
                found = localise(tile_boxes[group], cam[group, c], threshold)
                kept.append(found.box_px if found else union_box(tile_boxes[group]))
            boxes += len(kept)
            hits += sum(bool(mask[y : y + h, x : x + w].any()) for x, y, w, h in kept)
            covered += sum(any((labels[y : y + h, x : x + w] == k).any() for x, y, w, h in kept)
                           for k in real)
    return boxes, hits / boxes if boxes else float("nan"), covered / truths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx", type=Path)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--seeds", default="1234,999")
    args = parser.parse_args()
    card = ModelCard.load(args.onnx.with_name(MODELCARD_FILE))
    class_ids = [c.id for c in card.classes]
    with load_runtime("onnxruntime", args.onnx, max_batch=8, threads=1) as runtime:
        for seed in (int(s) for s in args.seeds.split(",")):
            outputs = list(model_outputs(runtime, seed, args.frames))
            print(f"\nseed {seed}, {args.frames} frames, {card.name} {card.version}, card "
                  f"thresholds {card.thresholds}")
            print(f"{'rule':<34}{'boxes':>6}{'precision':>11}{'coverage':>10}")
            for factor in THRESHOLD_FACTORS:
                cuts = [min(t * factor, 0.99) for t in card.thresholds]
                b, p, cov = score(outputs, class_ids, cuts, None)
                print(f"{f'thresholds x{factor}':<34}{b:>6}{p:>11.3f}{cov:>10.3f}")
            for margin in PEAK_MARGINS:
                b, p, cov = score(outputs, class_ids, card.thresholds, margin)
                print(f"{f'card thresholds, peak >= level+{margin:g}':<34}{b:>6}{p:>11.3f}"
                      f"{cov:>10.3f}")


if __name__ == "__main__":
    main()
