"""Image sizes from file headers (JPEG, PNG) without decoding: a cheap check of every image.

Other formats (BMP, TIFF) and headers this reader does not understand are decoded instead, so a
size is always the size the training reader will see.
"""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

from edge.errors import DataError
from train.data import images

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_SOF_MARKERS = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_HEADER_BYTES = 1 << 16


def header_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file from its header; decodes when the header is not parsed."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(_HEADER_BYTES)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    size = _png_size(head) if head.startswith(_PNG_SIGNATURE) else _jpeg_size(head)
    return size if size is not None else images.image_size(path)


def _png_size(head: bytes) -> tuple[int, int] | None:
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    if not head.startswith(b"\xff\xd8"):
        return None
    position = 2
    while position + 9 <= len(head):
        if head[position] != 0xFF:
            return None
        marker = head[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        length = struct.unpack(">H", head[position + 2 : position + 4])[0]
        if marker in _SOF_MARKERS:
            height, width = struct.unpack(">HH", head[position + 5 : position + 9])
            return int(width), int(height)
        position += 2 + length
    return None


def majority_size(sizes: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """The most common (width, height); ties go to the size of the first file in name order."""
    counts = Counter(sizes.values())
    best = max(counts.values())
    return next(size for size in sizes.values() if counts[size] == best)
