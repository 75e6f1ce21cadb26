"""Image files of a Severstal folder: listing, grayscale reading, integrity and size checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge import imageio as edge_imageio
from edge.errors import DataError


def list_images(directory: Path) -> list[str]:
    """Sorted file names of the images in `directory`."""
    return [path.name for path in edge_imageio.list_images(directory)]


def read_gray(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 H x W grayscale image; DataError naming the file if unreadable, truncated or of the
    wrong (width, height) `size`."""
    try:
        image = edge_imageio.read_gray(path)
    except edge_imageio.UnreadableImage as exc:
        raise DataError(f"{path}: {exc}") from None
    if size is not None and (image.shape[1], image.shape[0]) != tuple(size):
        raise DataError(
            f"{path}: image is {image.shape[1]}x{image.shape[0]}, expected {size[0]}x{size[1]}"
        )
    return image


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, decoding it (and so checking it)."""
    image = read_gray(path)
    return image.shape[1], image.shape[0]
