"""Image sizes from file headers without decoding (edge.imageio.declared_size: JPEG, PNG, BMP):
a cheap check of every image.

Other formats (TIFF) and headers this reader does not understand are decoded instead, so a
size is always the size the training reader will see.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from edge.errors import DataError
from edge.imageio import declared_size
from train.data import images

_HEADER_BYTES = 1 << 16


def header_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file from its header; decodes when the header is not parsed."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(_HEADER_BYTES)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    size = declared_size(head)
    return (int(size[0]), int(size[1])) if size is not None else images.image_size(path)


def majority_size(sizes: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """The most common (width, height); ties go to the size of the first file in name order."""
    counts = Counter(sizes.values())
    best = max(counts.values())
    return next(size for size in sizes.values() if counts[size] == best)
