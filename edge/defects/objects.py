"""Tiles over threshold -> one defect object per defect, in frame pixels and strip units.

Tiles of one frame that pass a class's cut and touch or overlap (8-neighbourhood on the tile
grid, overlapping tiles included) form one defect of that class. A defect that reaches the
frame's last tile row and goes on in the first row of the next frame, at an overlapping CD range,
keeps its `defect_id`. `refine` (the localisation step) may replace a defect's tile-union box by
a tighter one; without it the box is the union of its tiles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge.config import GeometryConfig
from edge.defects.localise import row_area, union_area
from edge.defects.position import Placement

Box = tuple[int, int, int, int]  # x, y, width, height in frame pixels
# (class index, tile indices of one defect) -> (box, area in px) or None to keep the tiles' box
Refine = Callable[[int, list[int]], tuple[Box, float] | None]


@dataclass(frozen=True)
class ClassCuts:
    """What the defect builder needs of the model's classes and the applied thresholds."""

    ids: list[int]
    names: list[str]
    cuts: np.ndarray  # float32 [C]: the threshold actually applied (max of class and min_score)
    applied: list[float]  # the cuts as events report them (DefectRule.applied_thresholds)


@dataclass
class _Edge:
    """A defect of the previous frame that reaches its last tile row."""

    class_index: int
    defect_id: int
    x0: int
    x1: int


class DefectBuilder:
    """Per coil: numbers defects and links those that continue across frames (one thread)."""

    def __init__(self, classes: ClassCuts, geometry: GeometryConfig, frame_width: int,
                 next_defect_id: int = 1) -> None:
        self.classes = classes
        self.geometry = geometry
        self.frame_width = frame_width
        self.next_defect_id = next_defect_id
        self._edges: list[_Edge] = []
        self._last_frame: tuple[int, int] | None = None  # (coil_key, frame_index)

    def build(self, probabilities: np.ndarray, boxes: np.ndarray, placement: Placement,
              refine: Refine | None = None) -> list[dict]:
        continues = self._last_frame == (placement.coil_key, placement.frame_index - 1)
        previous_edges = self._edges if continues else []
        self._last_frame = (placement.coil_key, placement.frame_index)
        self._edges = []
        hits = probabilities >= self.classes.cuts[None, :]
        if not hits.any():
            return []
        # plain lists from here: a frame has a few tiles, and numpy's per-call cost on arrays
        # that small was most of a defect's time
        rects = [(x, y, x + w, y + h) for x, y, w, h in np.asarray(boxes).tolist()]
        scores = probabilities.tolist()
        rows = (min(r[1] for r in rects), max(r[3] for r in rects))
        defects = []
        for c in np.flatnonzero(hits.any(axis=0)).tolist():
            for tiles in _components(rects, np.flatnonzero(hits[:, c]).tolist()):
                defects.append(self._defect(c, tiles, scores, rects, placement,
                                            previous_edges, rows, refine))
        return defects

    def _defect(self, c, tiles, scores, rects, placement, previous_edges, rows, refine):
        mine = [rects[t] for t in tiles]
        x0, y0 = min(r[0] for r in mine), min(r[1] for r in mine)
        x1, y1 = max(r[2] for r in mine), max(r[3] for r in mine)
        defect_id = self._id_for(c, x0, x1, y0 == rows[0], previous_edges)
        if y1 == rows[1]:
            self._edges.append(_Edge(c, defect_id, x0, x1))
        refined = refine(c, tiles) if refine is not None else None
        if refined is not None:
            box, area_px = refined
        else:
            box, area_px = (x0, y0, x1 - x0, y1 - y0), _tiles_area(mine)
        g = self.geometry
        return {
            "defect_id": defect_id,
            "class_id": self.classes.ids[c],
            "class_name": self.classes.names[c],
            "score": round(max(scores[t][c] for t in tiles), 6),
            "threshold": self.classes.applied[c],
            "box_px": [int(v) for v in box],
            "md_m": self._md(placement, box),
            "cd_mm": self._cd(box),
            "area_mm2": round(float(area_px) * g.mm_per_px_cd * g.mm_per_px_md, 3),
            "tiles": len(tiles),
        }

    def _id_for(self, c: int, x0: int, x1: int, at_top: bool, previous: list[_Edge]) -> int:
        if at_top:
            for edge in previous:
                if edge.class_index == c and edge.x0 <= x1 and x0 <= edge.x1:
                    previous.remove(edge)  # a defect that splits keeps its id in one part only
                    return edge.defect_id
        defect_id = self.next_defect_id
        self.next_defect_id += 1
        return defect_id

    def _md(self, placement: Placement, box: Box) -> list[float]:
        scale = self.geometry.mm_per_px_md / 1000.0
        return [round(placement.md_m + box[1] * scale, 4),
                round(placement.md_m + (box[1] + box[3]) * scale, 4)]

    def _cd(self, box: Box) -> list[float]:
        g = self.geometry
        x0, x1 = box[0], box[0] + box[2]
        if g.cd_origin == "right":
            x0, x1 = self.frame_width - x1, self.frame_width - x0
        return [round(g.cd_offset_mm + x0 * g.mm_per_px_cd, 2),
                round(g.cd_offset_mm + x1 * g.mm_per_px_cd, 2)]


def _components(rects: list[tuple[int, int, int, int]], tiles: list[int]) -> list[list[int]]:
    """Groups of tiles whose rectangles (x0, y0, x1, y1) touch or overlap (union-find; a frame
    has few tiles)."""
    parent = {t: t for t in tiles}

    def root(t: int) -> int:
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    for i, a in enumerate(tiles):
        ax0, ay0, ax1, ay1 = rects[a]
        for b in tiles[i + 1:]:
            bx0, by0, bx1, by1 = rects[b]
            if ax0 <= bx1 and bx0 <= ax1 and ay0 <= by1 and by0 <= ay1:
                parent[root(b)] = root(a)
    groups: dict[int, list[int]] = {}
    for t in tiles:
        groups.setdefault(root(t), []).append(t)
    return list(groups.values())


def _tiles_area(rects: list[tuple[int, int, int, int]]) -> int:
    """Pixels covered by the union of tile rectangles (x0, y0, x1, y1), exact."""
    y0, y1 = rects[0][1], rects[0][3]
    if all(r[1] == y0 and r[3] == y1 for r in rects):  # one tile row: every 256-px-high frame
        return row_area([(r[0], r[2]) for r in rects], y1 - y0)
    return union_area(np.array(rects, np.int64))
