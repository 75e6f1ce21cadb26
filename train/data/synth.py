"""Synthetic Severstal-format data: grayscale steel images with class I-III defects and RLE masks.

Each image is drawn from its own generator seeded by (seed, index), so image i is the same for
any number of images, and the same seed gives the same CSV bytes and the same decoded pixels.
Defects are drawn into the masks first; pixels are then changed exactly inside the final masks,
by at least MIN_CONTRAST grey levels, so masks and pixels agree. Project class ids: 1 = rolled-in
scale, 2 = scratches, 3 = rolling films (Severstal ids written to the CSV are the same).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.errors import DataError
from train.data import images, rle
from train.data.crops import DEFAULT_MIN_PIXELS
from train.data.folder import CSV_NAME, IMAGES_DIR
from train.data.synth_background import make_background, smooth_noise
from train.data.synth_defects import DRAWERS

log = logging.getLogger(__name__)

# Bump when the output for a given seed changes (test caches are keyed by it).
GENERATOR_VERSION = 2
# Images with class I, II, III defects in the paper's training data (Section 2).
PAPER_CLASS_COUNTS = (1919, 6667, 6238)
# Number of classes in a defective image: 1, 2 or 3 with these weights.
CLASSES_PER_IMAGE = (0.75, 0.2, 0.05)
MIN_CONTRAST = 25.0
MAX_CONTRAST = 120.0
JPEG_QUALITY = 92


@dataclass(frozen=True)
class ClassStyle:
    """How a class is rendered: chance of darkening, contrast range, contrast modulation."""

    dark: float
    contrast: tuple[float, float]
    modulation: float


STYLES = (
    ClassStyle(dark=0.8, contrast=(35, 80), modulation=0.2),  # I: dark spots
    ClassStyle(dark=0.5, contrast=(30, 75), modulation=0.25),  # II: dark or bright lines
    ClassStyle(dark=0.7, contrast=(30, 70), modulation=0.4),  # III: textured patches
)


@dataclass(frozen=True)
class SynthImage:
    """One rendered image (before JPEG), its background and bool [3, H, W] masks."""

    image_id: str
    image: np.ndarray
    background: np.ndarray
    masks: np.ndarray


def make_image_ids(seed: int, n: int) -> list[str]:
    """n distinct Kaggle-like names ('0002cc93b.jpg'); the first k are the same for any n."""
    rng = np.random.default_rng([seed, 0x1D5])
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        name = f"{int(rng.integers(0, 16**9)):09x}.jpg"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def choose_classes(rng, defect_free: float, class_weights=PAPER_CLASS_COUNTS) -> list[int]:
    """0-based classes to draw in one image; [] for a defect-free image."""
    if rng.random() < defect_free:
        return []
    weights = np.asarray(class_weights, dtype=float)
    count = 1 + int(rng.choice(len(CLASSES_PER_IMAGE), p=CLASSES_PER_IMAGE))
    count = min(count, int(np.count_nonzero(weights)))
    chosen = rng.choice(len(weights), size=count, replace=False, p=weights / weights.sum())
    return sorted(int(c) for c in chosen)


def render(
    seed: int,
    index: int,
    image_id: str,
    width: int = 1600,
    height: int = 256,
    defect_free: float = 0.5,
    class_weights=PAPER_CLASS_COUNTS,
) -> SynthImage:
    """Render image `index` of the data set with this seed."""
    rng = np.random.default_rng([seed, 0x5EED, index])
    classes = choose_classes(rng, defect_free, class_weights)
    background = make_background(rng, height, width)
    masks = _draw_masks(rng, classes, background, len(class_weights))
    base = to_uint8(background.pixels)
    image = _render_defects(rng, base, masks)
    return SynthImage(image_id, image, base, masks)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Round and saturate float grey levels (in place) into a new uint8 array."""
    np.clip(pixels, 0, 255, out=pixels)
    np.rint(pixels, out=pixels)
    return pixels.astype(np.uint8)


def _draw_masks(rng, classes, background, n_classes) -> np.ndarray:
    height, width = background.steel.shape
    masks = np.zeros((n_classes, height, width), dtype=bool)
    if not classes:
        return masks
    drawn = np.zeros((height, width), dtype=np.uint8)
    for c in classes:
        drawn[:] = 0
        DRAWERS[c](rng, drawn, background.x_range)
        np.logical_and(drawn, background.steel, out=masks[c])
    # Later classes are painted on top: small spots over scratches over films.
    for c in range(n_classes - 1, -1, -1):
        masks[c] &= ~np.any(masks[:c], axis=0) if c else True
    for c in range(n_classes):
        if 0 < masks[c].sum() < DEFAULT_MIN_PIXELS:
            masks[c] = False  # a leftover too small to be a defect is not drawn at all
    return masks


def _render_defects(rng, base: np.ndarray, masks: np.ndarray) -> np.ndarray:
    image = base.copy()
    for c, mask in enumerate(masks):
        if not mask.any():
            continue
        x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
        box = (slice(y, y + h), slice(x, x + w))
        _shade(rng, image[box], mask[box], STYLES[c % len(STYLES)])
    return image


def _shade(rng, region: np.ndarray, mask: np.ndarray, style: ClassStyle) -> None:
    """Change region[mask] in place by MIN_CONTRAST..MAX_CONTRAST grey levels."""
    h, w = region.shape
    texture = smooth_noise(rng, h, w, max(h // 6, 2), max(w // 6, 2))
    contrast = rng.uniform(*style.contrast) * (1 + style.modulation * texture)
    contrast = np.clip(contrast, MIN_CONTRAST, MAX_CONTRAST)
    sign = -1.0 if rng.random() < style.dark else 1.0
    base = region.astype(np.float32)
    level, mean_contrast = float(base[mask].mean()), float(contrast.mean())
    if not 10 <= level + sign * mean_contrast <= 245:
        sign = -sign  # too dark to darken (or too bright to brighten): shade the other way
    # Saturate in the chosen direction; only where that leaves too little change, go the other way.
    preferred = np.clip(base + sign * contrast, 0, 255)
    fallback = base - sign * contrast
    value = np.where(np.abs(preferred - base) < MIN_CONTRAST, fallback, preferred)
    region[mask] = np.clip(np.rint(value), 0, 255).astype(np.uint8)[mask]


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DataError("OpenCV could not encode a JPEG image")
    return data.tobytes()


def generate(
    out_dir,
    n_images: int,
    seed: int,
    width: int = 1600,
    height: int = 256,
    defect_free: float = 0.5,
    class_weights=PAPER_CLASS_COUNTS,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write `out_dir/train_images/*.jpg` and `out_dir/train.csv`; returns out_dir."""
    out = Path(out_dir)
    _check_arguments(out, n_images, width, height, defect_free, class_weights)
    image_dir = out / IMAGES_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, int, str]] = []
    for index, image_id in enumerate(make_image_ids(seed, n_images)):
        synth = render(seed, index, image_id, width, height, defect_free, class_weights)
        (image_dir / image_id).write_bytes(encode_jpeg(synth.image))
        for c, mask in enumerate(synth.masks):
            if mask.any():
                rows.append((image_id, c + 1, rle.encode(mask)))
        if progress is not None:
            progress(index + 1, n_images)
    _write_csv(out / CSV_NAME, sorted(rows))
    log.info("wrote %d images and %d mask rows to %s", n_images, len(rows), out)
    return out


def _check_arguments(out: Path, n_images, width, height, defect_free, class_weights) -> None:
    if n_images < 1:
        raise DataError(f"number of images must be >= 1, got {n_images}")
    if width < 64 or height < 64:
        raise DataError(f"image size {width}x{height} is too small (at least 64x64)")
    if not 0.0 <= defect_free <= 1.0:
        raise DataError(f"defect-free fraction {defect_free} is not between 0 and 1")
    if len(class_weights) != len(DRAWERS) or min(class_weights) < 0 or sum(class_weights) <= 0:
        raise DataError(f"class weights {class_weights} must be {len(DRAWERS)} values >= 0")
    image_dir = out / IMAGES_DIR
    if image_dir.is_dir() and images.list_images(image_dir):
        raise DataError(f"{image_dir} already contains images; choose an empty output folder")


def _write_csv(path: Path, rows) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["ImageId", "ClassId", "EncodedPixels"])
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
