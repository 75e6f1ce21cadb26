"""The samples the F1 gate scores a candidate on: from the run's data folder, or bundled.

`FolderGateSet` cuts them from the data folder as training evaluated (`train.evaluation`).
`BundledGateSet` reads the very same tiles and labels from a model package's gate.npz (which
`gate_arrays` writes), so a line PC gates without the data folder and gets the same scores: tiles
go to the predictor in the same order and batches as `train.evaluation` sends them.
"""

from __future__ import annotations

import zipfile
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
    """The same samples from a package's gate.npz, read one batch of tiles at a time.

    Labels and frame tile counts are loaded; tiles are streamed from the zip member, so a line
    PC gates a full Severstal test split (about 1.7 GB of tiles) in the memory of one batch.
    """

    def __init__(self, path: Path, small: dict[str, np.ndarray], lengths: dict[str, int]) -> None:
        self.path, self.small, self.lengths = path, small, lengths

    @classmethod
    def load(cls, path: Path) -> BundledGateSet:
        try:
            with np.load(path, allow_pickle=False) as data:
                names = set(data.files)
                small = {k: data[k] for k in names if not k.endswith("_tiles")}
            lengths = {k: _tile_header(path, k)[0] for k in names if k.endswith("_tiles")}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise PackageError(f"{path}: cannot read the gate set: {exc}") from None
        missing = [k for k in _KEYS if k not in small and k not in lengths]
        if missing:
            raise PackageError(f"{path}: gate set lacks {', '.join(missing)}")
        counts = small["test_frames_counts"]
        if int(counts.sum()) != lengths["test_frames_tiles"] or (counts < 1).any():
            raise PackageError(f"{path}: gate set frame tile counts do not add up")
        for tiles, labels, n in (("test_crops_tiles", "test_crops_labels", None),
                                 ("test_frames_tiles", "test_frames_labels", len(counts)),
                                 ("validation_crops_tiles", "validation_crops_labels", None)):
            expected = lengths[tiles] if n is None else n
            if len(small[labels]) != expected:
                raise PackageError(f"{path}: gate set {tiles} and {labels} do not match")
        return cls(path, small, lengths)

    @property
    def image_ids(self) -> list[str]:
        return [str(i) for i in self.small.get("test_image_ids", [])]

    def test_tiles(self) -> int:
        return self.lengths["test_crops_tiles"] + self.lengths["test_frames_tiles"]

    def validation_tiles(self) -> int:
        return self.lengths["validation_crops_tiles"]

    def score_test(self, predict) -> dict[str, ScoredSet]:
        crops = ScoredSet(self.small["test_crops_labels"].astype(bool),
                          self._scores(predict, "test_crops_tiles"))
        counts = self.small["test_frames_counts"]
        tile_scores = self._scores(predict, "test_frames_tiles")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        frames = ScoredSet(self.small["test_frames_labels"].astype(bool),
                           np.maximum.reduceat(tile_scores, starts, axis=0).astype(np.float32))
        return {"crops": crops, "frames": frames}

    def score_validation(self, predict) -> ScoredSet | None:
        if not self.lengths["validation_crops_tiles"]:
            return None
        return ScoredSet(self.small["validation_crops_labels"].astype(bool),
                         self._scores(predict, "validation_crops_tiles"))

    def _scores(self, predict, key: str) -> np.ndarray:
        classes = self.small["test_crops_labels"].shape[1]
        try:
            return _scores(predict, _tile_batches(self.path, key), classes)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise PackageError(f"{self.path}: cannot read the gate set's {key}: {exc}") from None


def _tile_header(path: Path, key: str) -> tuple[int, ...]:
    """Shape of the uint8 C-order tile array `key` of the npz at `path` (its .npy header)."""
    with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as member:
        return _read_header(member, key)


def _read_header(member, key: str) -> tuple[int, ...]:
    version = np.lib.format.read_magic(member)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    shape, fortran_order, dtype = read(member)
    if dtype != np.uint8 or fortran_order or len(shape) != 4:
        raise ValueError(f"{key} must be uint8 [n, h, w, c] in C order, got {dtype} {shape}"
                         f"{' (Fortran order)' if fortran_order else ''}")
    return shape


def _tile_batches(path: Path, key: str):
    """The tiles of `key` in chunks of BATCH_TILES, decompressed as they are read."""
    with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as member:
        shape = _read_header(member, key)
        tile_bytes = int(np.prod(shape[1:]))
        for start in range(0, shape[0], BATCH_TILES):
            count = min(BATCH_TILES, shape[0] - start)
            raw = member.read(count * tile_bytes)
            if len(raw) != count * tile_bytes:
                raise ValueError(f"{key} ends after {start + len(raw) // tile_bytes} of "
                                 f"{shape[0]} tiles")
            yield np.frombuffer(raw, np.uint8).reshape(count, *shape[1:])


def _scores(predict, batches, classes: int) -> np.ndarray:
    """Scores of the tile batches in order: chunks of BATCH_TILES, the batches train.evaluation's
    batcher sends, so the scores equal the data folder's bit for bit."""
    parts = [np.asarray(predict(np.ascontiguousarray(batch)), np.float32) for batch in batches]
    return np.concatenate(parts) if parts else np.zeros((0, classes), np.float32)


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
