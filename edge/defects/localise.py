"""Defect boxes from class activation maps: the cells of a defect's tiles reaching a class level.

Every model ends in global average pooling + Dense + sigmoid, so the class activation map of class
c, `cam_c(y, x) = W_c . F(y, x) + b_c`, is a grid of logits whose mean is exactly the tile's logit.
A tile passes class c when sigmoid(mean(cam_c)) >= threshold_c, i.e. mean(cam_c) >= logit(t_c).

The level a cell must reach starts from that same logit, `cam_level(t) = log(t / (1 - t))` (a
cell that on its own would make the tile pass), raised towards the defect's peak cell:
`level = cam_level(t) + PEAK_FRACTION x (peak - cam_level(t))`. The logit alone lets the weak,
spread-out background cells of a confident tile in (boxes barely tighter than tiles); the peak
term scales with how strongly the defect itself responds. Properties:
- a tile that passes always has at least one cell at or above the level (its maximum is >= its
  mean >= cam_level(t), and the peak cell is always in), so a defect of passing tiles always
  gets a box;
- the level moves with the per-class threshold the user tunes: a stricter threshold never
  gives a looser box, and no cell weaker than the decision itself is ever selected.

Cells are mapped to frame pixels by splitting each tile box into the map's h x w grid; the box is
the bounding box of the selected cells of all the defect's tiles (so it lies inside their tiles)
and the area is the area of the union of those cells (overlapping tiles are counted once).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

PEAK_FRACTION = 0.4  # measured in docs/performance.md "Defect localisation"


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


@lru_cache(maxsize=64)
def _offsets(size: int, cells: int) -> np.ndarray:
    return np.rint(np.linspace(0, size, cells + 1)).astype(np.int64)


def cell_edges(start: int, size: int, cells: int) -> np.ndarray:
    """Integer pixel edges of `cells` equal cells over [start, start + size] (cells + 1 values)."""
    return start + _offsets(int(size), int(cells))


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
    j0, j1 = np.searchsorted(xs, rects[:, 0]), np.searchsorted(xs, rects[:, 2])
    i0, i1 = np.searchsorted(ys, rects[:, 1]), np.searchsorted(ys, rects[:, 3])
    corners = np.zeros((len(ys), len(xs)), dtype=np.int32)  # 2-D difference array
    np.add.at(corners, (i0, j0), 1)
    np.add.at(corners, (i0, j1), -1)
    np.add.at(corners, (i1, j0), -1)
    np.add.at(corners, (i1, j1), 1)
    covered = corners.cumsum(axis=0).cumsum(axis=1)[:-1, :-1] > 0
    return int((np.outer(np.diff(ys), np.diff(xs)) * covered).sum())


def _overlap(tile_boxes: Sequence[Sequence[int]]) -> bool:
    """Whether any two tile boxes share pixels (then cell areas must not simply be summed)."""
    boxes = np.asarray(tile_boxes, dtype=np.int64).reshape(-1, 4)
    if len(boxes) < 2:
        return False
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    apart_x = (x1[:, None] <= x0[None, :]) | (x1[None, :] <= x0[:, None])
    apart_y = (y1[:, None] <= y0[None, :]) | (y1[None, :] <= y0[:, None])
    together = ~(apart_x | apart_y)
    np.fill_diagonal(together, False)
    return bool(together.any())


def localise(
    tile_boxes: Sequence[Sequence[int]], cams: Sequence[np.ndarray], threshold: float,
    peak_fraction: float = PEAK_FRACTION,
) -> Localised | None:
    """The tight box of one defect of one class.

    `tile_boxes[i]` is the (x, y, w, h) frame box of the defect's i-th tile and `cams[i]` that
    tile's CAM for the defect's class (float32 [h, w] logits); `threshold` is the class's
    probability threshold as applied. None when no cell reaches the level (the caller keeps the
    tile box).
    """
    if len(tile_boxes) != len(cams):
        raise ValueError(f"{len(tile_boxes)} tile boxes but {len(cams)} cam maps")
    maps = [np.asarray(cam) for cam in cams]
    if not maps:
        return None
    base = cam_level(threshold)
    peak = max(float(np.nanmax(m)) if not np.isnan(m).all() else -np.inf for m in maps)
    if not peak >= base:
        return None
    level = base + peak_fraction * (peak - base)
    parts = [_selected_cells(box, m, level) for box, m in zip(tile_boxes, maps, strict=True)]
    rects = np.concatenate(parts) if parts else np.zeros((0, 4), dtype=np.int64)
    if len(rects) == 0:
        return None
    x0, y0 = rects[:, 0].min(), rects[:, 1].min()
    x1, y1 = rects[:, 2].max(), rects[:, 3].max()
    box = (int(x0), int(y0), int(x1 - x0), int(y1 - y0))
    if _overlap(tile_boxes):
        area = union_area(rects)
    else:  # cells of one tile never overlap
        area = int(((rects[:, 2] - rects[:, 0]) * (rects[:, 3] - rects[:, 1])).sum())
    return Localised(box_px=box, area_px=area, cells=len(rects))
