"""Kaggle run-length encoding of binary masks (Severstal 2019 convention).

An RLE string is space-separated `start length` pairs. Pixels are numbered from 1, top to bottom
then left to right (column-major): pixel (y, x) of an H x W mask has number x * H + y + 1.
Runs must be sorted, disjoint and inside the image; an empty string is an empty mask. Errors are
`edge.errors.DataError` naming the offending token; callers add the file and row.
"""

from __future__ import annotations

import numpy as np

from edge.errors import DataError


class RleError(DataError):
    """An RLE string is malformed (the message names the token or run)."""


def parse_runs(rle: str, n_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated 0-based run starts and lengths (int64) of `rle` for an image of n_pixels."""
    if not isinstance(rle, str):
        raise RleError(f"RLE must be a string, got {type(rle).__name__}")
    tokens = rle.split()
    if len(tokens) % 2:
        raise RleError(f"odd number of RLE tokens ({len(tokens)}): every start needs a length")
    values = _to_ints(tokens)
    starts, lengths = values[0::2] - 1, values[1::2]
    _check_runs(starts, lengths, n_pixels)
    return starts, lengths


def _to_ints(tokens: list[str]) -> np.ndarray:
    try:
        return np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError:
        bad = next(t for t in tokens if not _is_int(t))
        raise RleError(f"RLE token '{bad}' is not an integer") from None


def _is_int(token: str) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True


def _check_runs(starts: np.ndarray, lengths: np.ndarray, n_pixels: int) -> None:
    if not len(starts):
        return
    bad = np.flatnonzero(starts < 0)
    if len(bad):
        raise RleError(f"RLE start {starts[bad[0]] + 1} is below 1 (pixels are numbered from 1)")
    bad = np.flatnonzero(lengths < 1)
    if len(bad):
        i = bad[0]
        raise RleError(f"RLE run at {starts[i] + 1} has length {lengths[i]} (must be >= 1)")
    ends = starts + lengths
    bad = np.flatnonzero(ends > n_pixels)
    if len(bad):
        i = bad[0]
        raise RleError(
            f"RLE run '{starts[i] + 1} {lengths[i]}' ends at pixel {ends[i]}, "
            f"past the image's {n_pixels} pixels"
        )
    bad = np.flatnonzero(starts[1:] < ends[:-1])
    if len(bad):
        i = bad[0]
        raise RleError(
            f"RLE run '{starts[i + 1] + 1} {lengths[i + 1]}' overlaps or precedes the run "
            f"'{starts[i] + 1} {lengths[i]}' (runs must be sorted and disjoint)"
        )


def runs_to_mask(starts: np.ndarray, lengths: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bool H x W mask of validated (sorted, disjoint) 0-based runs."""
    # Starts are unique and ends are unique, so plain fancy-index updates do not lose counts.
    delta = np.zeros(height * width + 1, dtype=np.int8)
    delta[starts] += 1
    delta[starts + lengths] -= 1
    flat = np.cumsum(delta[:-1], dtype=np.int8).astype(bool)
    return flat.reshape(width, height).T


def decode(rle: str, height: int, width: int) -> np.ndarray:
    """Bool H x W mask of a Kaggle RLE string (column-major, 1-indexed)."""
    starts, lengths = parse_runs(rle, height * width)
    return runs_to_mask(starts, lengths, height, width)


def encode(mask: np.ndarray) -> str:
    """Kaggle RLE string of a 2-D mask (non-zero = set); '' for an empty mask."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    flat = np.zeros(mask.size + 2, dtype=np.int8)
    flat[1:-1] = mask.T.reshape(-1) != 0
    changes = np.flatnonzero(flat[1:] != flat[:-1])
    if not len(changes):
        return ""
    starts, ends = changes[0::2], changes[1::2]
    pairs = np.empty(2 * len(starts), dtype=np.int64)
    pairs[0::2] = starts + 1
    pairs[1::2] = ends - starts
    return " ".join(map(str, pairs.tolist()))
