"""How well CAM boxes locate defects, on generated frames whose masks are the truth.

For each frame: tile it as the daemon does, run the model (with its `cam` output), take each
class's passing tiles, group touching or overlapping ones into defects (the daemon's defect
builder does this over the tile grid; frames here are one tile row), and box each defect with
`edge.defects.localise` (the tile union where it gives None). Against the 8-connected
components of the class's true mask:
- overlap precision: the fraction of boxes that overlap a true defect pixel of their class;
- coverage: the fraction of true defects that a box of their class overlaps;
- median box area over the 256x256 tile area.
The same figures for the tile-union boxes are measured on the same boxes' tiles, side by side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from edge.defects.localise import localise
from edge.inference.tiling import tile_frame
from train.data import synth

Box = tuple[int, int, int, int]


@dataclass
class BoxScores:
    boxes: int = 0
    overlapping: int = 0
    areas: list[int] = field(default_factory=list)
    covered: int = 0

    def summary(self, truths: int, tile_area: int) -> dict:
        return {
            "boxes": self.boxes,
            "overlap_precision": self.overlapping / self.boxes if self.boxes else float("nan"),
            "coverage": self.covered / truths if truths else float("nan"),
            "median_area_vs_tile": (float(np.median(self.areas)) / tile_area
                                    if self.areas else float("nan")),
        }


@dataclass
class LocalisationReport:
    frames: int
    true_defects: int
    cam: dict
    tiles: dict
    no_cell_boxes: int  # defects for which localise gave None (tile box kept)
    per_class: dict = field(default_factory=dict)  # class id -> true_defects, cam, tiles

    def as_dict(self) -> dict:
        return asdict(self)


def tile_groups(passing: np.ndarray, boxes: np.ndarray) -> list[list[int]]:
    """Indices of passing tiles grouped into runs that touch or overlap (one tile row)."""
    order = [i for i in np.argsort(boxes[:, 0], kind="stable") if passing[i]]
    groups: list[list[int]] = []
    end = None
    for i in order:
        x, _, w, _ = boxes[i]
        if groups and x <= end:
            groups[-1].append(int(i))
            end = max(end, x + w)
        else:
            groups.append([int(i)])
            end = x + w
    return groups


def union_box(boxes: np.ndarray) -> Box:
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = (boxes[:, 0] + boxes[:, 2]).max(), (boxes[:, 1] + boxes[:, 3]).max()
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def _touches(box: Box, mask: np.ndarray) -> bool:
    x, y, w, h = box
    return bool(mask[y : y + h, x : x + w].any())


def generated_frame(seed: int, index: int, width: int, height: int, defect_free: float):
    """(uint8 frame as the camera would deliver it after JPEG, bool masks [3, H, W])."""
    image_id = synth.make_image_ids(seed, index + 1)[index]
    rendered = synth.render(seed, index, image_id, width, height, defect_free)
    encoded = np.frombuffer(synth.encode_jpeg(rendered.image), np.uint8)
    return cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE), rendered.masks


def measure(runtime, class_ids: list[int], thresholds: list[float], seed: int, frames: int,
            width: int = 1600, height: int = 256, defect_free: float = 0.3,
            min_true_px: int = 16) -> LocalisationReport:
    """Localisation figures of `runtime` (which must have the cam output) on generated frames.

    `class_ids` are the card's 1-based project ids (mask channel id - 1); true defects smaller
    than `min_true_px` pixels (JPEG-scale specks) are not counted as defects to find.
    """
    if runtime.cam_shape is None:
        raise ValueError("the model has no cam output; re-export it with convert export-onnx")
    tile = runtime.input_spec.height
    cam_scores, tile_scores = BoxScores(), BoxScores()
    class_scores = {class_id: (BoxScores(), BoxScores()) for class_id in class_ids}
    class_truths = dict.fromkeys(class_ids, 0)
    truths = no_cell = 0
    for index in range(frames):
        frame, masks = generated_frame(seed, index, width, height, defect_free)
        tiles = tile_frame(frame, tile)
        probabilities, cam = runtime.infer_all_with_cam(tiles.stack()[..., None])
        for c, (class_id, threshold) in enumerate(zip(class_ids, thresholds, strict=True)):
            mask = masks[class_id - 1]
            count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
            real = [k for k in range(1, count) if stats[k, cv2.CC_STAT_AREA] >= min_true_px]
            truths += len(real)
            class_truths[class_id] += len(real)
            cam_boxes, tile_union_boxes = [], []
            for group in tile_groups(probabilities[:, c] >= threshold, tiles.boxes):
                tile_box = union_box(tiles.boxes[group])
                found = localise(tiles.boxes[group], cam[group, c], threshold)
                no_cell += found is None
                cam_boxes.append(found.box_px if found else tile_box)
                tile_union_boxes.append(tile_box)
            class_cam, class_tiles = class_scores[class_id]
            for scores, boxes in ((cam_scores, cam_boxes), (tile_scores, tile_union_boxes),
                                  (class_cam, cam_boxes), (class_tiles, tile_union_boxes)):
                _score(scores, boxes, mask, labels, real)
    tile_area = tile * tile
    per_class = {
        class_id: {"true_defects": class_truths[class_id],
                   "cam": class_cam.summary(class_truths[class_id], tile_area),
                   "tiles": class_tiles.summary(class_truths[class_id], tile_area)}
        for class_id, (class_cam, class_tiles) in class_scores.items()
    }
    return LocalisationReport(frames, truths, cam_scores.summary(truths, tile_area),
                              tile_scores.summary(truths, tile_area), no_cell, per_class)


def _score(scores: BoxScores, boxes: list[Box], mask, labels, real: list[int]) -> None:
    for box in boxes:
        scores.boxes += 1
        scores.overlapping += _touches(box, mask)
        scores.areas.append(box[2] * box[3])
    for k in real:
        component = labels == k
        scores.covered += any(_touches(box, component) for box in boxes)
