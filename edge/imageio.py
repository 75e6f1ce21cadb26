"""Reading image files as uint8 grayscale frames: the one reader for replay and training data.

Damaged files give `UnreadableImage` with the reason, never an OpenCV exception: replay skips and
counts them, the data reader turns them into one-line DataErrors naming the file.
"""

from __future__ import annotations

import errno
import stat
import struct
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
_JPEG_SUFFIXES = (".jpg", ".jpeg")
_JPEG_END = b"\xff\xd9"
# Inside JPEG entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so FFD9
# near the end of a file can only be the end-of-image marker; a little trailing padding is allowed.
_JPEG_TAIL = 1024


# pixels an image may declare before it is decoded (a line-scan frame of 16384 x 4096 fits);
# a tiny PNG declaring 20000 x 20000 would otherwise take 400 MB to decode and then be skipped
MAX_PIXELS = 1 << 26


class UnreadableImage(Exception):
    """An image file that cannot be used; the message says why."""


class WrongImageSize(UnreadableImage):
    """The image declares another size than the expected one (found before decoding it)."""

    def __init__(self, size: tuple[int, int], expected: tuple[int, int]) -> None:
        super().__init__(f"image is {size[0]}x{size[1]}, expected {expected[0]}x{expected[1]}")
        self.size = size


def list_images(folder: Path) -> list[Path]:
    """The image files in `folder` (by suffix, any case), sorted by name."""
    return scan_images(folder)[0]


def scan_images(folder: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Image files in `folder`, and the entries named like images that are not files (dangling
    or looping links, directories, devices) with the reason; both sorted by name."""
    files, others = [], []
    for path in folder.iterdir():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            reason = {errno.ENOENT: "dangling symbolic link",
                      errno.ELOOP: "symbolic link loop"}.get(exc.errno, exc.strerror)
            others.append((path, reason or str(exc)))
            continue
        if stat.S_ISREG(mode):
            files.append(path)
        else:
            others.append((path, "a directory" if stat.S_ISDIR(mode) else "not a regular file"))
    return sorted(files), sorted(others)


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, BMP, JPEG or TIFF header without decoding; None if not found."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if data[:2] in _TIFF_BYTE_ORDERS:
        return _tiff_size(data)
    return None


_TIFF_BYTE_ORDERS = {b"II": "<", b"MM": ">"}
_TIFF_WIDTH, _TIFF_LENGTH = 256, 257  # ImageWidth, ImageLength
# the integer types libtiff accepts for a size: BYTE, SHORT, LONG, LONG8 (BigTIFF) and signed
_TIFF_INTEGERS = {1: "B", 3: "H", 4: "I", 16: "Q", 6: "b", 8: "h", 9: "i", 17: "q"}
# magic -> format of the first directory's offset and where it is, format of its entry count,
# size of an entry and where in it an entry's (first) value is
_TIFF_LAYOUTS = {42: ("I", 4, "H", 12, 8), 43: ("Q", 8, "Q", 20, 12)}  # classic TIFF, BigTIFF


def _is_tiff(data: bytes) -> bool:
    """A classic or BigTIFF header in either byte order."""
    if data[:2] not in _TIFF_BYTE_ORDERS or len(data) < 16:
        return False
    (magic,) = struct.unpack_from(_TIFF_BYTE_ORDERS[data[:2]] + "H", data, 2)
    return magic in _TIFF_LAYOUTS


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """ImageWidth x ImageLength of the first image (the one OpenCV decodes), either byte order,
    classic or BigTIFF; the directory may be anywhere in the file (libtiff writes it last)."""
    if not _is_tiff(data):
        return None
    order = _TIFF_BYTE_ORDERS[data[:2]]
    (magic,) = struct.unpack_from(order + "H", data, 2)
    offset_format, offset_at, count_format, entry_size, value_at = _TIFF_LAYOUTS[magic]
    (offset,) = struct.unpack_from(order + offset_format, data, offset_at)
    count_size = struct.calcsize(count_format)
    if offset + count_size > len(data):
        return None
    (entries,) = struct.unpack_from(order + count_format, data, offset)
    found = {}
    first = offset + count_size
    for at in range(first, min(first + entries * entry_size, len(data) - entry_size + 1),
                    entry_size):
        tag, kind = struct.unpack_from(order + "HH", data, at)
        # libtiff reads unsorted directories too (so no early stop) and keeps a tag's first entry
        if tag in (_TIFF_WIDTH, _TIFF_LENGTH) and kind in _TIFF_INTEGERS and tag not in found:
            (found[tag],) = struct.unpack_from(order + _TIFF_INTEGERS[kind], data, at + value_at)
    if len(found) < 2:
        return None
    return found[_TIFF_WIDTH], found[_TIFF_LENGTH]


_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 9 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _JPEG_FRAME_MARKERS:
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        position += 2 + length
    return None


def read_gray(
    path: Path, expected: tuple[int, int] | None = None, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """uint8 HxW grayscale pixels of an image file, or UnreadableImage.

    The size a PNG, BMP, JPEG or TIFF declares is checked before decoding: more than
    `max_pixels`, or not `expected` (width, height) when given, and the file is refused
    without decoding it; so is a TIFF whose size cannot be read from its header.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UnreadableImage(f"cannot read ({exc.strerror or exc})") from None
    if not data:
        raise UnreadableImage("empty file")  # cv2.imdecode raises on an empty buffer
    if Path(path).suffix.lower() in _JPEG_SUFFIXES and _JPEG_END not in data[-_JPEG_TAIL:]:
        raise UnreadableImage("truncated JPEG (no end-of-image marker)")
    size = declared_size(data)
    if size is None and _is_tiff(data):  # libtiff would decode whatever size it finds
        raise UnreadableImage("TIFF header declares no readable size")
    if size is not None:
        if size[0] * size[1] > max_pixels:
            raise UnreadableImage(f"declares {size[0]}x{size[1]} pixels, more than the "
                                  f"{max_pixels / 1e6:.0f} MP an image may have")
        if expected is not None and tuple(size) != tuple(expected):
            raise WrongImageSize(size, expected)
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    except cv2.error as exc:  # e.g. a damaged header declaring an absurd image size
        reason = str(exc).strip().splitlines()[-1]
        raise UnreadableImage(f"not a decodable image ({reason})") from None
    if image is None:
        raise UnreadableImage("not a decodable image")
    if expected is not None and (image.shape[1], image.shape[0]) != tuple(expected):
        raise WrongImageSize((image.shape[1], image.shape[0]), expected)
    return image
