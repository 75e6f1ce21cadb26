"""The samples the F1 gate scores a candidate on: from the run's data folder, or bundled.

`FolderGateSet` cuts them from the data folder as training evaluated (`train.evaluation`).
`BundledGateSet` holds the very same tiles and labels in arrays (`gate_arrays` writes them into a
model package's gate.npz), so a line PC gates without the data folder and gets the same scores:
tiles go to the predictor in the same order and batches as `train.evaluation` sends them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.errors import PackageError
from edge.inference.tiling import tile_frame
from train.evaluation import (
    BATCH_TILES,
    EvalSettings,
    ScoredSet,
    crop_scores,
    iter_eval_crops,
    score_split,
)
from train.progress import split_tiles

VIEWS = ("crops", "frames")
_KEYS = ("test_crops_tiles", "test_crops_labels", "test_frames_tiles", "test_frames_counts",
         "test_frames_labels", "validation_crops_tiles", "validation_crops_labels")


class FolderGateSet:
    """Test split (both views) and validation crops of the run's data folder."""

    def __init__(self, folder, splits: dict, settings: EvalSettings) -> None:
        self.folder, self.splits, self.settings = folder, splits, settings

    def test_tiles(self) -> int:
        return split_tiles(self.folder, len(self.splits["test"]), self.settings)

    def validation_tiles(self) -> int:
        return len(self.splits.get("validation") or []) * self.settings.crops_per_image

    def score_test(self, predict) -> dict[str, ScoredSet]:
        return score_split(predict, self.folder, list(self.splits["test"]), self.settings)

    def score_validation(self, predict) -> ScoredSet | None:
        ids = list(self.splits.get("validation") or [])
        return crop_scores(predict, self.folder, ids, self.settings) if ids else None


class BundledGateSet:
    """The same samples from arrays (a package's gate.npz)."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    @classmethod
    def load(cls, path: Path) -> BundledGateSet:
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise PackageError(f"{path}: cannot read the gate set: {exc}") from None
        missing = [k for k in _KEYS if k not in arrays]
        if missing:
            raise PackageError(f"{path}: gate set lacks {', '.join(missing)}")
        counts = arrays["test_frames_counts"]
        if int(counts.sum()) != len(arrays["test_frames_tiles"]) or (counts < 1).any():
            raise PackageError(f"{path}: gate set frame tile counts do not add up")
        for tiles, labels, n in (("test_crops_tiles", "test_crops_labels", None),
                                 ("test_frames_tiles", "test_frames_labels", len(counts)),
                                 ("validation_crops_tiles", "validation_crops_labels", None)):
            expected = len(arrays[tiles]) if n is None else n
            if arrays[tiles].dtype != np.uint8 or len(arrays[labels]) != expected:
                raise PackageError(f"{path}: gate set {tiles} and {labels} do not match")
        return cls(arrays)

    def test_tiles(self) -> int:
        return len(self.arrays["test_crops_tiles"]) + len(self.arrays["test_frames_tiles"])

    def validation_tiles(self) -> int:
        return len(self.arrays["validation_crops_tiles"])

    def score_test(self, predict) -> dict[str, ScoredSet]:
        a = self.arrays
        crops = ScoredSet(a["test_crops_labels"].astype(bool),
                          _scores(predict, a["test_crops_tiles"]))
        counts = a["test_frames_counts"]
        tile_scores = _scores(predict, a["test_frames_tiles"])
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        frames = ScoredSet(a["test_frames_labels"].astype(bool),
                           np.maximum.reduceat(tile_scores, starts, axis=0).astype(np.float32))
        return {"crops": crops, "frames": frames}

    def score_validation(self, predict) -> ScoredSet | None:
        tiles = self.arrays["validation_crops_tiles"]
        if not len(tiles):
            return None
        return ScoredSet(self.arrays["validation_crops_labels"].astype(bool),
                         _scores(predict, tiles))


def _scores(predict, tiles: np.ndarray) -> np.ndarray:
    """Chunks of BATCH_TILES in order: the batches train.evaluation's batcher sends."""
    parts = [np.asarray(predict(np.ascontiguousarray(tiles[i : i + BATCH_TILES])), np.float32)
             for i in range(0, len(tiles), BATCH_TILES)]
    return np.concatenate(parts)


def gate_arrays(folder, splits: dict, settings: EvalSettings) -> dict[str, np.ndarray]:
    """The gate set's arrays, cut from the data folder exactly as train.evaluation cuts them."""
    test = list(splits["test"])
    crops = [(tiles, labels) for _, tiles, labels in iter_eval_crops(folder, test, settings)]
    frames = [tile_frame(folder.read_image(i), settings.tile, settings.frame_stride).stack()
              for i in test]
    validation = [(tiles, labels) for _, tiles, labels in
                  iter_eval_crops(folder, list(splits.get("validation") or []), settings)]
    tile_shape = (0, settings.tile, settings.tile, 1)
    classes = folder.labels.shape[1]
    return {
        "test_crops_tiles": np.concatenate([t for t, _ in crops]),
        "test_crops_labels": np.concatenate([lab for _, lab in crops]),
        "test_frames_tiles": np.concatenate(frames)[..., None],
        "test_frames_counts": np.asarray([len(f) for f in frames], dtype=np.int64),
        "test_frames_labels": np.asarray(folder.labels_of(test), dtype=bool),
        "test_image_ids": np.asarray(test),
        "validation_crops_tiles": np.concatenate([t for t, _ in validation])
        if validation else np.zeros(tile_shape, np.uint8),
        "validation_crops_labels": np.concatenate([lab for _, lab in validation])
        if validation else np.zeros((0, classes), bool),
    }
