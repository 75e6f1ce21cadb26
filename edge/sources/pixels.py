"""Convert a GenICam (PFNC) camera buffer to the uint8 HxW grayscale the model reads.

Colour and Bayer frames are reduced with OpenCV's ITU-R BT.601 weights (0.299 R + 0.587 G +
0.114 B), the same conversion `cv2.imread(..., IMREAD_GRAYSCALE)` applies to the training images.
"""

from __future__ import annotations

import cv2
import numpy as np

# PFNC name -> (bytes per pixel, cv2 conversion code or None for a plain copy).
# OpenCV names Bayer patterns by the second row's 2nd and 3rd pixels, so PFNC "BayerRG" (first row
# R G) is OpenCV's "BG"; the four-letter aliases (RGGB...) spell the PFNC top-left 2x2 directly.
_CONVERSIONS: dict[str, tuple[int, int | None]] = {
    "Mono8": (1, None),
    "RGB8": (3, cv2.COLOR_RGB2GRAY),
    "BGR8": (3, cv2.COLOR_BGR2GRAY),
    "RGBa8": (4, cv2.COLOR_RGBA2GRAY),
    "BGRa8": (4, cv2.COLOR_BGRA2GRAY),
    "BayerRG8": (1, cv2.COLOR_BayerRGGB2GRAY),
    "BayerGR8": (1, cv2.COLOR_BayerGRBG2GRAY),
    "BayerBG8": (1, cv2.COLOR_BayerBGGR2GRAY),
    "BayerGB8": (1, cv2.COLOR_BayerGBRG2GRAY),
}

SUPPORTED_PIXEL_FORMATS: tuple[str, ...] = tuple(_CONVERSIONS)


class PixelFormatError(ValueError):
    """The buffer's pixel format is not supported or its size does not match its geometry."""


def bytes_per_pixel(pixel_format: str) -> int:
    try:
        return _CONVERSIONS[pixel_format][0]
    except KeyError:
        supported = ", ".join(SUPPORTED_PIXEL_FORMATS)
        raise PixelFormatError(
            f"pixel format {pixel_format!r} is not supported (supported: {supported})"
        ) from None


def to_gray(
    data: np.ndarray, width: int, height: int, pixel_format: str, line_padding: int = 0
) -> np.ndarray:
    """Return a new C-contiguous uint8 [height, width] array that never shares memory with `data`
    (usually a view of a GenTL buffer that goes back to the producer right after).

    `data` is the flat byte buffer; each line may end with `line_padding` bytes, which are dropped.
    """
    channels = bytes_per_pixel(pixel_format)
    code = _CONVERSIONS[pixel_format][1]
    lines = _lines(np.asarray(data, dtype=np.uint8), width * channels, height, line_padding)
    if code is None:
        return np.array(lines, dtype=np.uint8, order="C", copy=True)
    if channels > 1:
        lines = lines.reshape(height, width, channels)
    return cv2.cvtColor(np.ascontiguousarray(lines), code)


def _lines(flat: np.ndarray, line_bytes: int, height: int, line_padding: int) -> np.ndarray:
    flat = flat.reshape(-1)
    stride = line_bytes + line_padding
    needed = stride * height - line_padding  # the last line may come without its padding
    if height <= 0 or line_bytes <= 0 or flat.size < needed:
        raise PixelFormatError(
            f"buffer of {flat.size} bytes is too small for {height} lines of {line_bytes} bytes"
        )
    if flat.size < stride * height:
        flat = np.concatenate([flat[:needed], np.zeros(line_padding, np.uint8)])
    return flat[: stride * height].reshape(height, stride)[:, :line_bytes]
