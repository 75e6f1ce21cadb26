"""Image files of a Severstal folder: listing, grayscale reading, integrity and size checks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_JPEG_SUFFIXES = (".jpg", ".jpeg")
_JPEG_EOI = b"\xff\xd9"
# Inside JPEG entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so FFD9
# near the end of a file can only be the end-of-image marker; a little trailing padding is allowed.
_EOI_TAIL_BYTES = 1024


def list_images(directory: Path) -> list[str]:
    """Sorted file names of the images in `directory`."""
    return sorted(
        p.name for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )


def read_gray(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 H x W grayscale image; DataError naming the file if unreadable, truncated or of the
    wrong (width, height) `size`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read image ({exc.strerror or exc})") from None
    if path.suffix.lower() in _JPEG_SUFFIXES and _JPEG_EOI not in data[-_EOI_TAIL_BYTES:]:
        raise DataError(f"{path}: truncated JPEG (no end-of-image marker)")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise DataError(f"{path}: not a decodable image")
    if size is not None and (image.shape[1], image.shape[0]) != tuple(size):
        raise DataError(
            f"{path}: image is {image.shape[1]}x{image.shape[0]}, expected {size[0]}x{size[1]}"
        )
    return image


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, decoding it (and so checking it)."""
    image = read_gray(path)
    return image.shape[1], image.shape[0]
