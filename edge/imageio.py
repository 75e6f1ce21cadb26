"""Reading image files as uint8 grayscale frames: the one reader for replay and training data.

Damaged files give `UnreadableImage` with the reason, never an OpenCV exception: replay skips and
counts them, the data reader turns them into one-line DataErrors naming the file.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
_JPEG_SUFFIXES = (".jpg", ".jpeg")
_JPEG_END = b"\xff\xd9"
# Inside JPEG entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so FFD9
# near the end of a file can only be the end-of-image marker; a little trailing padding is allowed.
_JPEG_TAIL = 1024


class UnreadableImage(Exception):
    """An image file that cannot be used; the message says why."""


def list_images(folder: Path) -> list[Path]:
    """The image files in `folder` (by suffix, any case), sorted by name."""
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )


def read_gray(path: Path) -> np.ndarray:
    """uint8 HxW grayscale pixels of an image file, or UnreadableImage."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UnreadableImage(f"cannot read ({exc.strerror or exc})") from None
    if not data:
        raise UnreadableImage("empty file")  # cv2.imdecode raises on an empty buffer
    if Path(path).suffix.lower() in _JPEG_SUFFIXES and _JPEG_END not in data[-_JPEG_TAIL:]:
        raise UnreadableImage("truncated JPEG (no end-of-image marker)")
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    except cv2.error as exc:  # e.g. a damaged header declaring an absurd image size
        reason = str(exc).strip().splitlines()[-1]
        raise UnreadableImage(f"not a decodable image ({reason})") from None
    if image is None:
        raise UnreadableImage("not a decodable image")
    return image
