"""The bundled gate set streams its tiles from gate.npz: a line PC gates a full test split in the
memory of one batch, with the same scores as the arrays held whole."""

from __future__ import annotations

import tracemalloc
import zipfile

import numpy as np
import pytest

from convert.gateset import BundledGateSet
from edge.errors import PackageError
from train.evaluation import BATCH_TILES

CLASSES = 3
TILE_BYTES = 256 * 256


def gate_arrays(crops: int, frames: int, tiles_per_frame: int = 7) -> dict[str, np.ndarray]:
    """A gate set whose tile i is filled with (i * 7) % 251, so every tile scores differently."""
    def tiles(n: int, offset: int) -> np.ndarray:
        values = ((np.arange(n) + offset) * 7 % 251).astype(np.uint8)
        return np.broadcast_to(values[:, None, None, None], (n, 256, 256, 1)).copy()

    rng = np.random.default_rng(0)
    return {
        "test_crops_tiles": tiles(crops, 0),
        "test_crops_labels": rng.random((crops, CLASSES)) < 0.3,
        "test_frames_tiles": tiles(frames * tiles_per_frame, crops),
        "test_frames_counts": np.full(frames, tiles_per_frame, np.int64),
        "test_frames_labels": rng.random((frames, CLASSES)) < 0.3,
        "test_image_ids": np.asarray([f"{i:04d}.jpg" for i in range(frames)]),
        "validation_crops_tiles": tiles(crops // 2, 5),
        "validation_crops_labels": rng.random((crops // 2, CLASSES)) < 0.3,
    }


def predict(batch: np.ndarray) -> np.ndarray:
    assert batch.dtype == np.uint8 and len(batch) <= BATCH_TILES
    means = batch.reshape(len(batch), -1).mean(axis=1, dtype=np.float64)
    return np.stack([means / 255, 1 - means / 255, (means % 17) / 17], axis=1)


def held_whole(arrays, key):
    tiles = arrays[key]
    return np.concatenate([predict(tiles[i:i + BATCH_TILES]) for i in range(0, len(tiles),
                                                                            BATCH_TILES)])


def test_scores_equal_the_whole_arrays_and_memory_stays_near_one_batch(tmp_path):
    arrays = gate_arrays(crops=600, frames=150)  # 1,950 tiles: 122 MiB of pixels
    path = tmp_path / "gate.npz"
    np.savez_compressed(path, **arrays)
    pixels = sum(v.nbytes for k, v in arrays.items() if k.endswith("_tiles"))

    tracemalloc.start()
    try:
        gate = BundledGateSet.load(path)
        test = gate.score_test(predict)
        validation = gate.score_validation(predict)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    print(f"peak {peak / 2**20:.1f} MiB for {pixels / 2**20:.0f} MiB of tiles")
    assert peak < 4 * BATCH_TILES * TILE_BYTES < pixels / 4  # about one batch, not the set
    assert gate.test_tiles() == 600 + 150 * 7 and gate.validation_tiles() == 300
    assert gate.image_ids == list(arrays["test_image_ids"])
    np.testing.assert_array_equal(test["crops"].scores,
                                  held_whole(arrays, "test_crops_tiles").astype(np.float32))
    frame_tiles = held_whole(arrays, "test_frames_tiles").reshape(150, 7, CLASSES)
    np.testing.assert_array_equal(test["frames"].scores, frame_tiles.max(axis=1).astype(np.float32))
    np.testing.assert_array_equal(test["frames"].labels, arrays["test_frames_labels"])
    np.testing.assert_array_equal(validation.scores,
                                  held_whole(arrays, "validation_crops_tiles").astype(np.float32))


def test_tiles_that_are_not_uint8_or_end_early_are_one_line(tmp_path):
    arrays = gate_arrays(crops=70, frames=2)
    bad = tmp_path / "float.npz"
    np.savez(bad, **{**arrays, "test_crops_tiles": arrays["test_crops_tiles"].astype(np.float32)})
    with pytest.raises(PackageError, match="test_crops_tiles must be uint8 .*float32") as err:
        BundledGateSet.load(bad)
    assert "\n" not in str(err.value)

    short = tmp_path / "short.npz"
    np.savez(short, **arrays)
    with zipfile.ZipFile(short) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["test_crops_tiles.npy"] = members["test_crops_tiles.npy"][:-TILE_BYTES * 3]
    with zipfile.ZipFile(short, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    gate = BundledGateSet.load(short)  # the header still says 70 tiles
    with pytest.raises(PackageError, match=r"test_crops_tiles ends after 67 of 70 tiles"):
        gate.score_test(predict)
