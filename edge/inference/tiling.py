"""The one tiling function: used by training evaluation, the conversion gate and the daemon.

A frame of any size >= the tile is covered by tiles of the model's input size. Tiles step by
`stride`; the last tile in each direction is aligned to the border, so it overlaps its neighbour
instead of being padded (padding would show the model a border it never saw in training).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.errors import SteelInspectError


class TilingError(SteelInspectError):
    """The frame cannot be tiled (smaller than a tile, bad stride)."""


@dataclass(frozen=True)
class Tiles:
    """Tiles of one frame: `views[i]` = frame[y:y+h, x:x+w] (a view), `boxes[i]` = (x, y, w, h)."""

    views: list[np.ndarray]
    boxes: np.ndarray  # int32 [n, 4]: x, y, w, h

    def __len__(self) -> int:
        return len(self.views)

    def stack(self, out: np.ndarray | None = None) -> np.ndarray:
        """Copy the tiles into one contiguous batch [n, h, w, ...] (into `out` when given)."""
        return np.stack(self.views, out=out) if out is not None else np.stack(self.views)


def axis_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets along one axis: every `stride` pixels, the last one flush with the border."""
    if stride < 1 or stride > tile:
        raise TilingError(f"tile stride {stride} must be between 1 and the tile size {tile}")
    if length < tile:
        raise TilingError(f"frame side of {length} px is smaller than the {tile} px tile")
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def tile_boxes(
    height: int, width: int, tile: int = 256, stride: int | None = None
) -> np.ndarray:
    """Boxes (x, y, w, h) of the tiles covering a height x width frame, row-major order."""
    stride = tile if stride is None else stride
    ys = axis_starts(height, tile, stride)
    xs = axis_starts(width, tile, stride)
    boxes = np.array([(x, y, tile, tile) for y in ys for x in xs], dtype=np.int32)
    return boxes


def tile_frame(frame: np.ndarray, tile: int = 256, stride: int | None = None) -> Tiles:
    """Cut `frame` (H x W or H x W x C) into tiles; see the module docstring for the layout."""
    if frame.ndim not in (2, 3):
        raise TilingError(f"frame must be HxW or HxWxC, got shape {frame.shape}")
    height, width = frame.shape[:2]
    if height < tile or width < tile:
        raise TilingError(f"frame of {width}x{height} px is smaller than the {tile}x{tile} tile")
    boxes = tile_boxes(height, width, tile, stride)
    views = [frame[y : y + h, x : x + w] for x, y, w, h in boxes]
    return Tiles(views=views, boxes=boxes)
