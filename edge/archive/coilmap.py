"""The coil defect map: one PNG per coil, MD along the strip (x) by CD across it (y).

Drawn with OpenCV only (no matplotlib on the line PC). Each axis is linear in its own unit, so
every defect's MD extent (m) and CD extent (mm) is drawn to scale; a defect smaller than
`MIN_MARK_PX` on the picture is drawn that large so it stays visible. One colour per class
(`class_colour`), a legend with each class's count, ticks in metres (MD) and millimetres (CD).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.archive.files import write_atomic

# BGR, chosen to stay distinct from each other and from the grey axes
CLASS_COLOURS = ((40, 40, 220), (200, 120, 0), (0, 170, 0), (0, 140, 255), (180, 0, 180),
                 (160, 160, 0), (60, 60, 140), (0, 0, 0))
BACKGROUND = (255, 255, 255)
STRIP = (235, 235, 235)
AXIS = (90, 90, 90)
TEXT = (20, 20, 20)
FONT = cv2.FONT_HERSHEY_SIMPLEX
MIN_MARK_PX = 3
LEFT, RIGHT, TOP, BOTTOM = 70, 190, 34, 44
PLOT_HEIGHT = 320


@dataclass(frozen=True)
class MapDefect:
    md_m: tuple[float, float]
    cd_mm: tuple[float, float]
    class_name: str

    @classmethod
    def from_event(cls, defect: dict) -> MapDefect:
        """From a defect object of an event (keys md_m, cd_mm, class_name)."""
        return cls(tuple(defect["md_m"]), tuple(defect["cd_mm"]), defect["class_name"])


@dataclass(frozen=True)
class MapLayout:
    """Where the plot lies in the picture and how units map to pixels."""

    x0: int
    y0: int
    width: int
    height: int
    length_m: float
    cd_mm: tuple[float, float]

    def md_to_x(self, md_m: float) -> float:
        return self.x0 + md_m / self.length_m * self.width

    def cd_to_y(self, cd_mm: float) -> float:
        low, high = self.cd_mm
        return self.y0 + (cd_mm - low) / (high - low) * self.height


@dataclass(frozen=True)
class CoilMap:
    image: np.ndarray  # uint8 BGR
    layout: MapLayout
    counts: dict[str, int]


def class_colour(index: int) -> tuple[int, int, int]:
    return CLASS_COLOURS[index % len(CLASS_COLOURS)]


def nice_step(span: float, ticks: int) -> float:
    """A 1, 2 or 5 x 10^k step giving about `ticks` intervals over `span`."""
    raw = span / max(1, ticks)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _label(value: float, step: float) -> str:
    return f"{value:.0f}" if step >= 1 else f"{value:.{max(0, -math.floor(math.log10(step)))}f}"


def _text(image, text: str, org: tuple[int, int], scale: float = 0.42) -> None:
    cv2.putText(image, text, org, FONT, scale, TEXT, 1, cv2.LINE_AA)


def _draw_axes(image: np.ndarray, layout: MapLayout) -> None:
    x0, y0, w, h = layout.x0, layout.y0, layout.width, layout.height
    cv2.rectangle(image, (x0 - 1, y0 - 1), (x0 + w, y0 + h), AXIS, 1)
    step = nice_step(layout.length_m, max(2, w // 110))
    for i in range(int(layout.length_m / step + 1e-9) + 1):
        x = round(layout.md_to_x(i * step))
        cv2.line(image, (x, y0 + h), (x, y0 + h + 5), AXIS, 1)
        _text(image, _label(i * step, step), (x - 10, y0 + h + 19))
    _text(image, "MD (m from the coil head)", (x0 + w // 2 - 90, y0 + h + 38))
    low, high = layout.cd_mm
    step = nice_step(high - low, max(2, h // 60))
    tick = math.ceil(low / step) * step
    while tick <= high + 1e-9:
        y = round(layout.cd_to_y(tick))
        cv2.line(image, (x0 - 6, y), (x0 - 1, y), AXIS, 1)
        _text(image, _label(tick, step), (4, y + 4))
        tick += step
    _text(image, "CD (mm)", (4, y0 - 8))


def _draw_legend(image: np.ndarray, layout: MapLayout, classes: Sequence[str],
                 counts: dict[str, int]) -> None:
    x = layout.x0 + layout.width + 16
    for i, name in enumerate(classes):
        y = layout.y0 + 8 + 22 * i
        cv2.rectangle(image, (x, y), (x + 14, y + 14), class_colour(i), cv2.FILLED)
        _text(image, f"{name}: {counts.get(name, 0)}", (x + 20, y + 12))


def render_coil_map(
    defects: Iterable[MapDefect], classes: Sequence[str], length_m: float,
    cd_range_mm: tuple[float, float], title: str = "", width_px: int = 1600,
    counts: dict[str, int] | None = None,
) -> CoilMap:
    """The coil map picture. `classes` fixes the colour order (the model card's class names);
    `cd_range_mm` is the strip's CD extent as seen by this camera (e.g. cd_offset_mm to
    cd_offset_mm + frame width x mm_per_px_cd). The legend counts the marks drawn per class, or
    `counts` when given (the coil report's distinct defects: a defect over several frames is
    several marks)."""
    if not length_m > 0:
        raise ValueError(f"coil length {length_m} m must be > 0")
    low, high = cd_range_mm
    if not high > low:
        raise ValueError(f"CD range {cd_range_mm} mm must be increasing")
    width = max(width_px, LEFT + RIGHT + 200)
    layout = MapLayout(LEFT, TOP, width - LEFT - RIGHT, PLOT_HEIGHT, float(length_m),
                       (float(low), float(high)))
    image = np.full((TOP + PLOT_HEIGHT + BOTTOM, width, 3), BACKGROUND, dtype=np.uint8)
    cv2.rectangle(image, (layout.x0, layout.y0),
                  (layout.x0 + layout.width - 1, layout.y0 + layout.height - 1), STRIP,
                  cv2.FILLED)
    given = counts
    counts = {name: 0 for name in classes}
    index = {name: i for i, name in enumerate(classes)}
    for defect in defects:
        i = index.setdefault(defect.class_name, len(index))
        counts[defect.class_name] = counts.get(defect.class_name, 0) + 1
        _draw_defect(image, layout, defect, class_colour(i))
    _draw_axes(image, layout)
    _draw_legend(image, layout, list(index), counts if given is None else {**counts, **given})
    if title:
        _text(image, title, (layout.x0, 20), 0.5)
    return CoilMap(image, layout, counts)


def _draw_defect(image, layout: MapLayout, defect: MapDefect, colour) -> None:
    xa, xb = (layout.md_to_x(m) for m in defect.md_m)
    ya, yb = (layout.cd_to_y(mm) for mm in defect.cd_mm)
    x0, x1 = _span(min(xa, xb), max(xa, xb), layout.x0, layout.x0 + layout.width)
    y0, y1 = _span(min(ya, yb), max(ya, yb), layout.y0, layout.y0 + layout.height)
    cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), colour, cv2.FILLED)


def _span(a: float, b: float, low: int, high: int) -> tuple[int, int]:
    """Pixel interval [start, end) for [a, b], at least MIN_MARK_PX, inside [low, high)."""
    start, end = math.floor(a), math.ceil(b)
    if end - start < MIN_MARK_PX:
        middle = (a + b) / 2
        start = math.floor(middle - MIN_MARK_PX / 2)
        end = start + MIN_MARK_PX
    start = min(max(start, low), high - MIN_MARK_PX)
    end = max(min(end, high), start + MIN_MARK_PX)
    return start, end


def encode_png(coil_map: CoilMap) -> bytes:
    ok, encoded = cv2.imencode(".png", coil_map.image)
    if not ok:
        raise ValueError("OpenCV could not encode the coil map")
    return encoded.tobytes()


def write_coil_map(path: Path, coil_map: CoilMap) -> None:
    """Encode as PNG and write atomically (temp file + rename)."""
    write_atomic(Path(path), encode_png(coil_map))
