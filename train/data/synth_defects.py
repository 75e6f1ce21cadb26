"""Defect masks of the synthetic generator, drawn with OpenCV into uint8 H x W masks.

Morphologies follow the paper's Table 1: class I rolled-in scale = small round spots, often in
groups, the smallest defects; class II = lines/scratches/abrasions, mostly along the rolling
direction (horizontal), from short lines to ones crossing the whole image, single or parallel;
class III = rolling films, large tear-outs with ragged edges and no orientation.
"""

from __future__ import annotations

import cv2
import numpy as np

# Smallest spot radius: a spot then covers >= ~45 px, above crops.DEFAULT_MIN_PIXELS.
SPOT_RADIUS = (4.0, 9.0)


def _centre(rng, x_range, height) -> tuple[float, float]:
    return rng.uniform(x_range[0], x_range[1]), rng.uniform(0, height - 1)


def _ragged_polygon(rng, cx, cy, rx, ry, vertices, jitter, angle=0.0) -> np.ndarray:
    """Closed polygon around (cx, cy): an ellipse whose radius varies smoothly plus jitter."""
    theta = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    harmonics = sum(
        rng.uniform(0, jitter) / k * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        for k in (2, 3, 5)
    )
    radius = 1 + harmonics + rng.uniform(-jitter / 3, jitter / 3, vertices)
    radius = np.clip(radius, 0.35, None)
    x, y = rx * radius * np.cos(theta), ry * radius * np.sin(theta)
    cos, sin = np.cos(angle), np.sin(angle)
    points = np.stack([cx + cos * x - sin * y, cy + sin * x + cos * y], axis=1)
    return np.round(points).astype(np.int32)


def draw_spots(rng, mask, x_range) -> None:
    """Class I: 1-3 groups of 1-12 small round spots."""
    height = mask.shape[0]
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = _centre(rng, x_range, height)
        spread = rng.uniform(6, 60)
        for _ in range(min(int(rng.geometric(0.3)), 12)):
            r = rng.uniform(*SPOT_RADIUS)
            px, py = cx + rng.normal(0, spread), cy + rng.normal(0, spread * 0.6)
            ry = r * rng.uniform(0.65, 1.0)
            poly = _ragged_polygon(rng, px, py, r, ry, 12, 0.12, rng.uniform(0, np.pi))
            cv2.fillPoly(mask, [poly], 1)


def draw_scratches(rng, mask, x_range) -> None:
    """Class II: 1-6 lines, mostly horizontal, 24 px to the full width, some in parallel sets."""
    height, width = mask.shape
    for _ in range(min(int(rng.geometric(0.5)), 6)):
        if rng.random() < 0.12:
            length = width * 1.2
        else:
            length = float(np.exp(rng.uniform(np.log(24), np.log(width * 0.6))))
        angle = rng.normal(0, 0.04) if rng.random() < 0.85 else rng.uniform(-1.3, 1.3)
        thickness = int(rng.integers(2, 6))
        cx, cy = _centre(rng, x_range, height)
        path = _wavy_path(rng, cx, cy, length, angle)
        copies = int(rng.integers(2, 6)) if rng.random() < 0.25 else 1
        gap = rng.uniform(thickness + 2, thickness + 9)
        normal = np.array([-np.sin(angle), np.cos(angle)])
        for k in range(copies):
            shifted = np.round(path + k * gap * normal).astype(np.int32)
            cv2.polylines(mask, [shifted], False, 1, thickness)


def _wavy_path(rng, cx, cy, length, angle, segments=6) -> np.ndarray:
    t = np.linspace(-0.5, 0.5, segments + 1) * length
    drift = np.cumsum(rng.normal(0, 0.6 + length / 400, segments + 1))
    drift -= drift.mean()
    cos, sin = np.cos(angle), np.sin(angle)
    return np.stack([cx + cos * t - sin * drift, cy + sin * t + cos * drift], axis=1)


def draw_films(rng, mask, x_range) -> None:
    """Class III: 1-2 large ragged patches, sometimes with torn holes inside."""
    height = mask.shape[0]
    for _ in range(1 + int(rng.random() < 0.3)):
        cx, cy = _centre(rng, x_range, height)
        rx = rng.uniform(22, 150)
        ry = min(rx * rng.uniform(0.4, 1.2), 0.45 * height)
        poly = _ragged_polygon(rng, cx, cy, rx, ry, 56, 0.45, rng.uniform(0, np.pi))
        cv2.fillPoly(mask, [poly], 1)
        for _ in range(int(rng.integers(0, 3))):
            hx, hy = cx + rng.uniform(-0.5, 0.5) * rx, cy + rng.uniform(-0.5, 0.5) * ry
            hole = _ragged_polygon(rng, hx, hy, rx * 0.15, ry * 0.15, 16, 0.4)
            cv2.fillPoly(mask, [hole], 0)


DRAWERS = (draw_spots, draw_scratches, draw_films)
