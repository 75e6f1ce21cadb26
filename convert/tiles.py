"""Tiles the conversion stage feeds models: parity checks and INT8 calibration (numpy only).

Tiles are cut from whole frames with `edge.inference.tiling.tile_frame`, exactly as the line cuts
them.
Calibration uses the TRAINING split only: validation chose the thresholds and test judges the
engine, so neither may shape the quantisation.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from edge.errors import DataError
from edge.inference.modelcard import ModelCard
from edge.inference.tiling import tile_frame
from train.rundir import data_folder, open_run_data

log = logging.getLogger(__name__)


def frame_tiles(folder, image_ids, count: int, seed: int, tile: int = 256) -> np.ndarray:
    """`count` tiles uint8 [count, tile, tile, 1] from frames of `image_ids` picked with `seed`
    (`tile`: the model card's input size, as the line cuts them)."""
    if not image_ids:
        raise DataError("no images to take tiles from")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(image_ids))
    picked: list[np.ndarray] = []
    for index in order:
        tiles = tile_frame(folder.read_image(image_ids[index]), tile).stack()
        picked.extend(tiles[rng.permutation(len(tiles))])
        if len(picked) >= count:
            break
    return np.stack(picked[:count])[..., None]


def synthetic_tiles(count: int, tile: int = 256, seed: int = 0) -> np.ndarray:
    """Steel-like tiles (shaded background, noise, a few dark streaks) when no data is left."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:tile, 0:tile]
    out = np.empty((count, tile, tile, 1), dtype=np.uint8)
    for i in range(count):
        shade = 90 + 60 * np.sin(xs / rng.uniform(40, 200) + rng.uniform(0, 6))
        image = shade + rng.normal(0, 12, (tile, tile))
        for _ in range(rng.integers(0, 4)):
            y = rng.integers(0, tile)
            image[max(0, y - 2) : y + 2, rng.integers(0, tile // 2) :] -= rng.uniform(30, 80)
        out[i, ..., 0] = np.clip(image, 0, 255).astype(np.uint8)
    return out


def parity_tiles(
    card: ModelCard, run_dir: Path, count: int, data_dir: Path | None = None, seed: int = 0
) -> tuple[np.ndarray, str]:
    """Real test-split tiles of the run's data, or synthetic ones if the data folder is gone."""
    folder_path = data_folder(card, data_dir)
    if folder_path is None or not folder_path.is_dir():
        log.warning(
            "data folder %s is gone: checking the export on %d SYNTHETIC tiles", folder_path, count
        )
        return synthetic_tiles(count, card.input.height, seed), "synthetic tiles (data folder gone)"
    folder, splits = open_run_data(card, run_dir, data_dir)
    ids = splits.get("test") or folder.image_ids
    return (frame_tiles(folder, list(ids), count, seed, card.input.height),
            f"test-split tiles of {folder_path}")


def calibration_tiles(folder, splits: dict, count: int, seed: int = 0,
                      tile: int = 256) -> np.ndarray:
    """INT8 calibration tiles: from the training split only, never validation or test."""
    train_ids = list(splits.get("train") or [])
    if not train_ids:
        raise DataError("the run's splits have no training images to calibrate INT8 with")
    return frame_tiles(folder, train_ids, count, seed, tile)


def tiles_sha256(tiles: np.ndarray) -> str:
    digest = hashlib.sha256(str(tiles.shape).encode())
    digest.update(np.ascontiguousarray(tiles).tobytes())
    return digest.hexdigest()
