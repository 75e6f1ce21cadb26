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


def _tile_edges(starts: np.ndarray, sizes: np.ndarray, cells: int) -> np.ndarray:
    """[n, cells + 1] cell edges of n tiles along one axis (`cell_edges` of each, at once)."""
    if (sizes == sizes[0]).all():  # the usual case: one tile size, its offsets cached
        return starts[:, None] + _offsets(int(sizes[0]), cells)[None, :]
    return np.stack([cell_edges(s, z, cells) for s, z in zip(starts, sizes, strict=True)])


def union_area(rects: np.ndarray) -> int:
    """Exact area of a union of axis-aligned integer rectangles [k, 4] (x0, y0, x1, y1)."""
    if len(rects) == 0:
        return 0
    if (rects[:, 1] == rects[0, 1]).all() and (rects[:, 3] == rects[0, 3]).all():
        return row_area(rects[:, [0, 2]].tolist(), int(rects[0, 3] - rects[0, 1]))
    xs = np.unique(rects[:, [0, 2]])
    ys = np.unique(rects[:, [1, 3]])
    j0, j1 = np.searchsorted(xs, rects[:, 0]), np.searchsorted(xs, rects[:, 2])
    i0, i1 = np.searchsorted(ys, rects[:, 1]), np.searchsorted(ys, rects[:, 3])
    return _grid_area(xs, ys, i0, i1, j0, j1)


def row_area(spans: list, height: int) -> int:
    """`union_area` of rectangles that share one row (every tile row of a frame), given as their
    [x0, x1] spans: the length of the spans' union times the row's height, in plain Python."""
    covered, reach = 0, None
    for x0, x1 in sorted(spans):
        if reach is None or x0 >= reach:
            covered, reach = covered + max(x1 - x0, 0), x1
        elif x1 > reach:
            covered, reach = covered + x1 - reach, x1
    return covered * max(height, 0)


def _grid_area(xs: np.ndarray, ys: np.ndarray, i0, i1, j0, j1) -> int:
    """Area covered by rectangles given as index ranges [i0, i1) x [j0, j1) into the sorted
    grid edges ys x xs."""
    # 2-D difference array: +1 at each rectangle's top-left and bottom-right grid corner, -1 at
    # the other two, in one bincount (np.add.at costs several times more on small arrays)
    width = len(xs)
    corners = np.concatenate([i0 * width + j0, i1 * width + j1, i0 * width + j1, i1 * width + j0])
    signs = np.repeat(np.array([1, 1, -1, -1], dtype=np.int64), len(i0))
    counts = np.bincount(corners, weights=signs, minlength=len(ys) * width)
    covered = counts.reshape(len(ys), width).cumsum(axis=0).cumsum(axis=1)[:-1, :-1] > 0.5
    return int((np.outer(np.diff(ys), np.diff(xs)) * covered).sum())


def _cells_area(selected: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> int:
    """Area of the union of the selected cells [n, h, w] of tiles whose cell edges are xs
    [n, w + 1] and ys [n, h + 1] (tiles may overlap): on the grid of all the tiles' edges."""
    grid_x, grid_y = np.unique(xs), np.unique(ys)
    jx, iy = np.searchsorted(grid_x, xs), np.searchsorted(grid_y, ys)
    tile, row, col = np.nonzero(selected)
    return _grid_area(grid_x, grid_y, iy[tile, row], iy[tile, row + 1], jx[tile, col],
                      jx[tile, col + 1])


def _overlap(boxes: np.ndarray) -> bool:
    """Whether any two tile boxes [n, 4] share pixels (then cell areas must not simply be
    summed). A sweep over x: a defect's tiles lie on the tiling grid, so each meets few others."""
    if len(boxes) < 2:
        return False
    spans = sorted(zip(boxes[:, 0].tolist(), (boxes[:, 0] + boxes[:, 2]).tolist(),
                       boxes[:, 1].tolist(), (boxes[:, 1] + boxes[:, 3]).tolist(), strict=True))
    for i, (_, x1, y0, y1) in enumerate(spans):
        for u0, _, v0, v1 in spans[i + 1:]:
            if u0 >= x1:
                break
            if v0 < y1 and y0 < v1:
                return True
    return False


def localise(
    tile_boxes: Sequence[Sequence[int]] | np.ndarray, cams: Sequence[np.ndarray] | np.ndarray,
    threshold: float, peak_fraction: float = PEAK_FRACTION,
) -> Localised | None:
    """The tight box of one defect of one class.

    `tile_boxes[i]` is the (x, y, w, h) frame box of the defect's i-th tile and `cams[i]` that
    tile's CAM for the defect's class (float32 [h, w] logits; an [n, h, w] array is taken as it
    is); `threshold` is the class's probability threshold as applied. None when no cell reaches
    the level (the caller keeps the tile box). All tiles are handled at once (no loop per tile:
    this runs for every defect of every frame).
    """
    if len(tile_boxes) != len(cams):
        raise ValueError(f"{len(tile_boxes)} tile boxes but {len(cams)} cam maps")
    if len(cams) == 0:
        return None
    maps = np.asarray(cams, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[1] == 0 or maps.shape[2] == 0:
        raise ValueError(f"cam map must be 2-D [h, w], got shape {maps.shape[1:]}")
    base = cam_level(threshold)
    peak = float(maps.max())
    if peak != peak:  # NaN cells never reach any level
        peak = float(np.nanmax(maps)) if not np.isnan(maps).all() else -np.inf
    if not peak >= base:
        return None
    selected = maps >= base + peak_fraction * (peak - base)  # [n, h, w]
    rows, cols = selected.any(axis=2), selected.any(axis=1)  # [n, h], [n, w]
    if not rows.any():
        return None
    boxes = np.asarray(tile_boxes, dtype=np.int64).reshape(-1, 4)
    xs = _tile_edges(boxes[:, 0], boxes[:, 2], maps.shape[2])  # [n, w + 1]
    ys = _tile_edges(boxes[:, 1], boxes[:, 3], maps.shape[1])  # [n, h + 1]
    x0, x1 = xs[:, :-1][cols].min(), xs[:, 1:][cols].max()
    y0, y1 = ys[:, :-1][rows].min(), ys[:, 1:][rows].max()
    box = (int(x0), int(y0), int(x1 - x0), int(y1 - y0))
    cells = int(selected.sum())
    if _overlap(boxes):
        area = _cells_area(selected, xs, ys)
    else:  # cells of one tile never overlap: sum of (cell height x cell width) over selected
        heights, widths = ys[:, 1:] - ys[:, :-1], xs[:, 1:] - xs[:, :-1]
        area = int(np.einsum("nhw,nh,nw->", selected, heights, widths))
    return Localised(box_px=box, area_px=area, cells=cells)
