"""Defect-free steel backgrounds for the synthetic generator (float32, grey levels 0..255).

The paper (after Table 1) describes undamaged surfaces as texturally homogeneous but with glare,
strongly lit or darkened zones, rough formations, corrugation, and sometimes the strip edge with
the background behind it. Each appears here with some probability; the rolling direction is
horizontal, so the fine texture is streaked along x.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np


@dataclass
class Background:
    """`pixels` float32 H x W; `steel` bool H x W (False behind the strip edge); `x_range` the
    columns where defects may be centred."""

    pixels: np.ndarray
    steel: np.ndarray
    x_range: tuple[int, int]


def smooth_noise(rng, height, width, cells_y, cells_x, interpolation=cv2.INTER_CUBIC):
    """Roughly unit-variance noise, smooth over cells of height/cells_y x width/cells_x."""
    small = rng.standard_normal((max(cells_y, 2), max(cells_x, 2)), dtype=np.float32)
    return cv2.resize(small, (width, height), interpolation=interpolation)


LOW_RES = 4


@lru_cache(maxsize=1)
def _grain_pool() -> np.ndarray:
    return np.random.default_rng(0x6EA1).standard_normal((512, 2048), dtype=np.float32)


def grain(rng, height: int, width: int) -> np.ndarray:
    """Unit pixel noise: a random window of a fixed pool (drawing fresh noise costs more than the
    rest of the background); fresh noise for images larger than the pool."""
    pool = _grain_pool()
    if height > pool.shape[0] or width > pool.shape[1]:
        return rng.standard_normal((height, width), dtype=np.float32)
    y = int(rng.integers(0, pool.shape[0] - height + 1))
    x = int(rng.integers(0, pool.shape[1] - width + 1))
    window = pool[y : y + height, x : x + width]
    return window[::-1] if rng.random() < 0.5 else window


def make_background(rng: np.random.Generator, height: int, width: int) -> Background:
    # Smooth components are summed at quarter resolution and upscaled once (most of the cost).
    low = np.zeros((max(height // LOW_RES, 2), max(width // LOW_RES, 2)), dtype=np.float32)
    low += rng.uniform(6, 20) * smooth_noise(rng, *low.shape, 3, width // 130)
    if rng.random() < 0.3:
        _add_blob(rng, low, rng.uniform(25, 70))  # glare
    if rng.random() < 0.25:
        _add_blob(rng, low, -rng.uniform(25, 60))  # dark zone
    if rng.random() < 0.35:
        _add_rough_formations(rng, low)
    pixels = cv2.resize(low, (width, height), interpolation=cv2.INTER_LINEAR)
    pixels += np.float32(rng.uniform(70, 170))
    pixels += rng.uniform(2, 7) * smooth_noise(
        rng, height, width, height // 2, width // 24, cv2.INTER_LINEAR
    )
    pixels += np.float32(rng.uniform(1.5, 5)) * grain(rng, height, width)
    if rng.random() < 0.25:
        _add_corrugation(rng, pixels)
    steel = np.ones((height, width), dtype=bool)
    x_range = (0, width - 1)
    if rng.random() < 0.15:
        x_range = _add_strip_edge(rng, pixels, steel)
    return Background(pixels, steel, x_range)


def _add_corrugation(rng, pixels) -> None:
    width = pixels.shape[1]
    period = rng.uniform(18, 70)
    x = np.arange(width, dtype=np.float32)
    wave = np.sin(2 * np.pi * x / period + rng.uniform(0, 2 * np.pi))
    pixels += (rng.uniform(4, 12) * wave).astype(np.float32)[None, :]


def _add_blob(rng, low, amplitude: float) -> None:
    """A large Gaussian bright or dark zone, on the quarter-resolution layer."""
    height, width = low.shape
    cx, cy = rng.uniform(0, width), rng.uniform(-0.2 * height, 1.2 * height)
    sx, sy = rng.uniform(40, 260) / LOW_RES, rng.uniform(40, 200) / LOW_RES
    gx = np.exp(-0.5 * ((np.arange(width, dtype=np.float32) - cx) / sx) ** 2)
    gy = np.exp(-0.5 * ((np.arange(height, dtype=np.float32) - cy) / sy) ** 2)
    low += np.float32(amplitude) * np.outer(gy, gx)


def _add_rough_formations(rng, low) -> None:
    """Soft, low-contrast blotches: undamaged texture that must not be taken for a defect."""
    small = np.zeros_like(low)
    for _ in range(int(rng.integers(1, 6))):
        centre = (int(rng.integers(0, small.shape[1])), int(rng.integers(0, small.shape[0])))
        axes = (int(rng.integers(3, 25)), int(rng.integers(2, 12)))
        cv2.ellipse(small, centre, axes, rng.uniform(0, 180), 0, 360, rng.choice([-1.0, 1.0]), -1)
    low += rng.uniform(6, 14) * cv2.GaussianBlur(small, (0, 0), 2.0)


def _add_strip_edge(rng, pixels, steel) -> tuple[int, int]:
    """The strip ends inside the frame; behind it a dark, flat background."""
    height, width = pixels.shape
    depth = rng.uniform(40, min(400, width / 3))
    slope = rng.uniform(-0.3, 0.3)
    ys = np.arange(height, dtype=np.float32)
    edge = depth + slope * (ys - height / 2) + 2 * np.sin(ys / rng.uniform(8, 30))
    xs = np.arange(width, dtype=np.float32)[None, :]
    left = rng.random() < 0.5
    behind = xs < edge[:, None] if left else xs > (width - 1 - edge)[:, None]
    dark = np.float32(rng.uniform(5, 35)) + 2 * grain(rng, height, width)
    pixels[behind] = dark[behind]
    steel[behind] = False
    margin = int(edge.max()) + 4
    return (margin, width - 1) if left else (0, width - 1 - margin)
