"""Evaluate any tile predictor on a split, numpy only (no TensorFlow: the conversion gate uses it).

A predictor maps uint8 tiles [n, 256, 256, 1] to float32 probabilities [n, C]. Two views of a split:

(a) crops (paper section 6): `crops_per_image` random tiles per image; the boxes of an image depend
    only on the seed and the image id (not on the other images of the split), labels follow the
    crop-label rule of `train.data.crops`;
(b) frames: every frame tiled with `edge.inference.tiling.tile_frame`; a frame's score for a class
is the
    maximum over its tiles (a class is present if any tile passes its threshold) and its labels
    are the image labels.

Tiles go to the predictor in batches of at most `batch_size`, image by image, so a big split is
never held in memory at once.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from edge.errors import DataError, ModelError
from edge.inference.tiling import tile_frame
from train.data.crops import DEFAULT_MIN_PIXELS, crop_labels, random_boxes
from train.metrics import metrics_table

log = logging.getLogger(__name__)

Predictor = Callable[[np.ndarray], np.ndarray]

TILE = 256
CROPS_PER_IMAGE = 10
BATCH_TILES = 64


@dataclass(frozen=True)
class EvalSettings:
    """Everything that decides which tiles an evaluation sees; stored in the model card."""

    seed: int
    crops_per_image: int = CROPS_PER_IMAGE
    min_pixels: int = DEFAULT_MIN_PIXELS
    tile: int = TILE
    frame_stride: int | None = None  # None: tiles do not overlap (the daemon's default)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> EvalSettings:
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)


@dataclass
class ScoredSet:
    """Ground truth and predicted probabilities of a set of samples (crops or frames)."""

    labels: np.ndarray  # bool [n, C]
    scores: np.ndarray  # float32 [n, C]
    image_ids: list[str] = field(default_factory=list)  # owner image of each sample

    def metrics(self, thresholds) -> dict:
        return metrics_table(self.labels, self.scores, thresholds)

    @classmethod
    def from_arrays(cls, arrays, prefix: str) -> ScoredSet:
        return cls(
            labels=np.asarray(arrays[f"{prefix}_labels"], dtype=bool),
            scores=np.asarray(arrays[f"{prefix}_scores"], dtype=np.float32),
            image_ids=[str(i) for i in arrays[f"{prefix}_image_ids"]],
        )

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """Arrays for np.savez: `{prefix}_labels`, `{prefix}_scores`, `{prefix}_image_ids`."""
        return {
            f"{prefix}_labels": self.labels,
            f"{prefix}_scores": self.scores,
            f"{prefix}_image_ids": np.array(self.image_ids),
        }


def image_crop_boxes(image_id: str, height: int, width: int, settings: EvalSettings) -> np.ndarray:
    """The evaluation crop boxes (x, y, w, h) of one image: a function of seed and image id only."""
    rng = np.random.default_rng([settings.seed, zlib.crc32(image_id.encode())])
    return random_boxes(rng, height, width, settings.crops_per_image, settings.tile)


def _check_ids(folder, image_ids: list[str]) -> list[str]:
    image_ids = list(image_ids)
    if not image_ids:
        raise DataError("the split to evaluate is empty")
    known = set(folder.image_ids)
    missing = [i for i in image_ids if i not in known]
    if missing:
        raise DataError(
            f"image {missing[0]} of the split is not in the data folder ({len(missing)} missing)"
        )
    return image_ids


def iter_eval_crops(
    folder, image_ids: Iterable[str], settings: EvalSettings
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Per image: (image_id, tiles uint8 [k, t, t, 1], labels bool [k, C])."""
    num_classes = folder.labels.shape[1]
    for image_id in image_ids:
        image = folder.read_image(image_id)
        boxes = image_crop_boxes(image_id, image.shape[0], image.shape[1], settings)
        if folder.labels_of([image_id])[0].any():
            labels = crop_labels(folder.masks(image_id), boxes, settings.min_pixels)
        else:
            labels = np.zeros((len(boxes), num_classes), dtype=bool)
        tiles = np.stack([image[y : y + h, x : x + w] for x, y, w, h in boxes])[..., None]
        yield image_id, tiles, np.asarray(labels, dtype=bool)


def crop_eval_set(
    folder, image_ids: Iterable[str], settings: EvalSettings
) -> tuple[np.ndarray, np.ndarray]:
    """All evaluation crops of a split in memory: tiles uint8 [n, t, t, 1], labels bool [n, C].

    For Keras validation during training; evaluation itself streams (`crop_scores`).
    """
    parts = list(iter_eval_crops(folder, _check_ids(folder, image_ids), settings))
    return np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])


class _Batcher:
    """Feeds tiles to a predictor in batches of at most `batch_size`; keeps the scores in order."""

    def __init__(self, predict: Predictor, batch_size: int, num_classes: int) -> None:
        self.predict = predict
        self.batch_size = batch_size
        self.num_classes = num_classes
        self.pending: list[np.ndarray] = []
        self.pending_count = 0
        self.scores: list[np.ndarray] = []

    def add(self, tiles: np.ndarray) -> None:
        self.pending.append(tiles)
        self.pending_count += len(tiles)
        if self.pending_count >= self.batch_size:
            self._run(final=False)

    def finish(self) -> np.ndarray:
        self._run(final=True)
        if not self.scores:
            return np.zeros((0, self.num_classes), dtype=np.float32)
        return np.concatenate(self.scores)

    def _run(self, final: bool) -> None:
        if not self.pending:
            return
        tiles = np.concatenate(self.pending)
        stop = len(tiles) if final else len(tiles) - len(tiles) % self.batch_size
        for start in range(0, stop, self.batch_size):
            self.scores.append(self._predict(tiles[start : min(start + self.batch_size, stop)]))
        rest = tiles[stop:]
        self.pending = [rest] if len(rest) else []
        self.pending_count = len(rest)

    def _predict(self, batch: np.ndarray) -> np.ndarray:
        scores = np.asarray(self.predict(np.ascontiguousarray(batch)), dtype=np.float32)
        if scores.shape != (len(batch), self.num_classes):
            raise ModelError(
                f"predictor returned shape {scores.shape} for {len(batch)} tiles; "
                f"expected ({len(batch)}, {self.num_classes})"
            )
        return scores


def crop_scores(
    predict: Predictor,
    folder,
    image_ids: Iterable[str],
    settings: EvalSettings,
    batch_size: int = BATCH_TILES,
) -> ScoredSet:
    """Labels and scores of the evaluation crops (view (a))."""
    image_ids = _check_ids(folder, image_ids)
    batcher = _Batcher(predict, batch_size, folder.labels.shape[1])
    labels, owners = [], []
    for image_id, tiles, tile_labels in iter_eval_crops(folder, image_ids, settings):
        batcher.add(tiles)
        labels.append(tile_labels)
        owners.extend([image_id] * len(tiles))
    return ScoredSet(np.concatenate(labels), batcher.finish(), owners)


def frame_scores(
    predict: Predictor,
    folder,
    image_ids: Iterable[str],
    settings: EvalSettings,
    batch_size: int = BATCH_TILES,
) -> ScoredSet:
    """Labels (the image labels) and scores (max over the frame's tiles) of whole frames (b)."""
    image_ids = _check_ids(folder, image_ids)
    batcher = _Batcher(predict, batch_size, folder.labels.shape[1])
    counts = []
    for image_id in image_ids:
        tiles = tile_frame(folder.read_image(image_id), settings.tile, settings.frame_stride)
        batcher.add(tiles.stack()[..., None])
        counts.append(len(tiles))
    tile_scores = batcher.finish()
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    scores = np.maximum.reduceat(tile_scores, starts, axis=0)
    labels = folder.labels_of(image_ids)
    return ScoredSet(labels, scores.astype(np.float32), list(image_ids))


def score_split(
    predict: Predictor,
    folder,
    image_ids: Iterable[str],
    settings: EvalSettings,
    batch_size: int = BATCH_TILES,
) -> dict[str, ScoredSet]:
    """Both views of a split: {"crops": ScoredSet, "frames": ScoredSet}."""
    image_ids = _check_ids(folder, image_ids)
    return {
        "crops": crop_scores(predict, folder, image_ids, settings, batch_size),
        "frames": frame_scores(predict, folder, image_ids, settings, batch_size),
    }


def metrics_of(scored: dict[str, ScoredSet], thresholds) -> dict:
    """{"crops": metrics_table, "frames": metrics_table} of `score_split` outputs."""
    return {view: s.metrics(thresholds) for view, s in scored.items()}


def evaluate_predictor(
    predict: Predictor,
    folder,
    image_ids: Iterable[str],
    thresholds,
    *,
    seed: int,
    crops_per_image: int = CROPS_PER_IMAGE,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    frame_stride: int | None = None,
    batch_size: int = BATCH_TILES,
) -> dict:
    """Metrics of a predictor on a split: {"crops": metrics_table, "frames": metrics_table}."""
    settings = EvalSettings(
        seed=seed, crops_per_image=crops_per_image, min_pixels=min_pixels,
        frame_stride=frame_stride,
    )
    if len(thresholds) != folder.labels.shape[1]:
        raise ModelError(
            f"{len(thresholds)} thresholds for {folder.labels.shape[1]} classes in the data"
        )
    return metrics_of(score_split(predict, folder, image_ids, settings, batch_size), thresholds)
