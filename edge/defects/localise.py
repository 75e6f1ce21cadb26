"""Defect boxes from class activation maps: the cells of a defect's tiles reaching a class level.

Every model ends in global average pooling + Dense + sigmoid, so the class activation map of class
c, `cam_c(y, x) = W_c . F(y, x) + b_c`, is a grid of logits whose mean is exactly the tile's logit.
A tile passes class c when sigmoid(mean(cam_c)) >= threshold_c, i.e. mean(cam_c) >= logit(t_c).

The level a cell must reach is that same logit, `cam_level(t) = log(t / (1 - t))`: a cell is part
of the defect when, on its own, it would have made the tile pass. Two properties follow:
- a tile that passes always has at least one such cell (its maximum is >= its mean), so a
  defect built from passing tiles always gets a box;
- the level moves with the per-class threshold the user tunes, in the same direction: a stricter
  threshold gives tighter boxes, never a box from cells weaker than the decision itself.

Cells are mapped to frame pixels by splitting each tile box into the map's h x w grid; the box is
the bounding box of the selected cells of all the defect's tiles (so it lies inside their tiles)
and the area is the area of the union of those cells (overlapping tiles are counted once).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Localised:
    box_px: tuple[int, int, int, int]  # x, y, w, h in frame pixels
    area_px: int  # area of the union of the selected cells
    cells: int  # selected cells over all tiles


def cam_level(threshold: float) -> float:
    """The logit a CAM cell must reach for a class with this probability threshold (0 < t < 1)."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold {threshold} must be strictly between 0 and 1")
    return math.log(threshold / (1.0 - threshold))


def cell_edges(start: int, size: int, cells: int) -> np.ndarray:
    """Integer pixel edges of `cells` equal cells over [start, start + size] (cells + 1 values)."""
    return start + np.rint(np.linspace(0, size, cells + 1)).astype(np.int64)


def _selected_cells(box: Sequence[int], cam: np.ndarray, level: float) -> np.ndarray:
    """[k, 4] rectangles x0, y0, x1, y1 of the cells of one tile reaching `level`."""
    if cam.ndim != 2 or cam.size == 0:
        raise ValueError(f"cam map must be 2-D [h, w], got shape {cam.shape}")
    x, y, w, h = (int(v) for v in box)
    rows, cols = np.nonzero(cam >= level)  # NaN cells never reach any level
    xs = cell_edges(x, w, cam.shape[1])
    ys = cell_edges(y, h, cam.shape[0])
    return np.stack([xs[cols], ys[rows], xs[cols + 1], ys[rows + 1]], axis=1)


def union_area(rects: np.ndarray) -> int:
    """Exact area of a union of axis-aligned integer rectangles [k, 4] (x0, y0, x1, y1)."""
    if len(rects) == 0:
        return 0
    xs = np.unique(rects[:, [0, 2]])
    ys = np.unique(rects[:, [1, 3]])
    covered = np.zeros((len(ys) - 1, len(xs) - 1), dtype=bool)
    for x0, y0, x1, y1 in rects:
        i0, i1 = np.searchsorted(ys, (y0, y1))
        j0, j1 = np.searchsorted(xs, (x0, x1))
        covered[i0:i1, j0:j1] = True
    return int((np.outer(np.diff(ys), np.diff(xs)) * covered).sum())


def localise(
    tile_boxes: Sequence[Sequence[int]], cams: Sequence[np.ndarray], threshold: float
) -> Localised | None:
    """The tight box of one defect of one class.

    `tile_boxes[i]` is the (x, y, w, h) frame box of the defect's i-th tile and `cams[i]` that
    tile's CAM for the defect's class (float32 [h, w] logits); `threshold` is the class's
    probability threshold as applied. None when no cell reaches the level (the caller keeps the
    tile box).
    """
    if len(tile_boxes) != len(cams):
        raise ValueError(f"{len(tile_boxes)} tile boxes but {len(cams)} cam maps")
    level = cam_level(threshold)
    parts = [_selected_cells(box, np.asarray(cam), level)
             for box, cam in zip(tile_boxes, cams, strict=True)]
    rects = np.concatenate(parts) if parts else np.zeros((0, 4), dtype=np.int64)
    if len(rects) == 0:
        return None
    x0, y0 = rects[:, 0].min(), rects[:, 1].min()
    x1, y1 = rects[:, 2].max(), rects[:, 3].max()
    box = (int(x0), int(y0), int(x1 - x0), int(y1 - y0))
    return Localised(box_px=box, area_px=union_area(rects), cells=len(rects))
