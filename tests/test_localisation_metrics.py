"""CAM boxes of the trained tiny model on held-out generated frames: tighter than tiles, as right.

Frames of seed 1234 (the model trains on seed 7); the truth is the generator's masks. Margins
are set below the figures measured in docs/performance.md "Defect localisation".
"""

from __future__ import annotations

from edge.inference.modelcard import MODELCARD_FILE, ModelCard
from edge.inference.runtime import load_runtime
from train.localisation import measure

HELD_OUT_SEED = 1234
FRAMES = 40


def test_cam_boxes_are_at_least_1_6x_tighter_than_tiles_and_as_right(exported_run):
    card = ModelCard.load(exported_run.path.with_name(MODELCARD_FILE))
    with load_runtime("onnxruntime", exported_run.path, max_batch=8, threads=2) as runtime:
        report = measure(runtime, [c.id for c in card.classes], card.thresholds,
                         HELD_OUT_SEED, FRAMES)
    cam, tiles = report.cam, report.tiles
    assert report.true_defects >= 60 and cam["boxes"] >= 20
    assert report.no_cell_boxes == 0  # a defect of passing tiles always gets cells
    # the same defects, boxed two ways: only the box changes
    assert cam["boxes"] == tiles["boxes"]
    assert cam["median_area_vs_tile"] <= tiles["median_area_vs_tile"] / 1.6
    assert cam["overlap_precision"] >= tiles["overlap_precision"] - 0.03
    assert cam["overlap_precision"] >= 0.6
    assert cam["coverage"] >= tiles["coverage"] - 0.06
    assert cam["coverage"] >= 0.5
    # the per-class figures (bench_localise's table) partition the overall ones
    per_class = report.per_class.values()
    assert sum(f["true_defects"] for f in per_class) == report.true_defects
    assert sum(f["cam"]["boxes"] for f in per_class) == cam["boxes"]
    hits = sum(f["cam"]["overlap_precision"] * f["cam"]["boxes"] for f in per_class
               if f["cam"]["boxes"])
    assert abs(hits - cam["overlap_precision"] * cam["boxes"]) < 1e-6
