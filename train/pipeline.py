"""Training input: random 256x256 crops of full images, labelled from the masks, augmented.

Numpy side (`CropSource`): the split's images are decoded once into memory (uint8 [n, H, W]) and
each defective image's masks are packed as class bits (bit c = class c + 1) into one integer
per pixel, so a Kaggle-size split costs about twice its decoded pixels, not C summed-area tables
per image. A crop's labels follow the crop-label rule of `train.data.crops` (a class is present
when >= min_pixels of its mask pixels are inside): the pixels of each class are counted in the
crop's packed bits, which gives exactly the counts of `crop_labels`' summed-area tables (the tests
check it) at a fraction of the cost per random crop. `CropPlanner` draws what to crop: image
(optionally oversampling images of rare classes), box, flips and quarter turns, from a seeded
numpy generator.

tf.data side (`train_dataset`): planned batches -> parallel map (numpy crop, label, flips and
quarter turns, which are views: one copy per tile) -> prefetch. Each stage is a pure function of
its plan, so a seed gives the same batches.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from edge.errors import DataError
from train.data.crops import DEFAULT_MIN_PIXELS, DEFAULT_TILE, random_boxes

log = logging.getLogger(__name__)

# plan columns: image index, box x, box y, horizontal flip, vertical flip, quarter turns
PLAN_COLUMNS = ("index", "x", "y", "flip_h", "flip_v", "turns")
ANCHORS_PER_CLASS = 64  # defect pixels kept per image and class for --defect-focus


@dataclass(frozen=True)
class PipelineConfig:
    batch_size: int = 16
    tile: int = DEFAULT_TILE
    min_pixels: int = DEFAULT_MIN_PIXELS
    oversample: float = 0.0  # 0: images uniformly; 1: rare-class images as often as common ones
    defect_focus: float = 0.0  # chance that a defective image's crop is placed over a defect
    augment: bool = True
    seed: int = 0
    decode_threads: int = 4


def _bits_dtype(num_classes: int):
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if num_classes <= np.iinfo(dtype).bits:
            return dtype
    raise DataError(f"{num_classes} classes: at most 64 are supported")


class CropSource:
    """Decoded images and packed masks of one split, in memory; cuts labelled crops."""

    def __init__(self, folder, image_ids, config: PipelineConfig) -> None:
        self.image_ids = list(image_ids)
        if not self.image_ids:
            raise DataError("the training split is empty")
        self.config = config
        self.labels = folder.labels_of(self.image_ids)
        self.num_classes = self.labels.shape[1]
        self.height, self.width = folder.height, folder.width
        if self.height < config.tile or self.width < config.tile:
            raise DataError(
                f"images of {self.width}x{self.height} px are smaller than the {config.tile} px "
                "tile"
            )
        self.images = np.empty((len(self.image_ids), self.height, self.width), dtype=np.uint8)
        self.mask_slot = np.full(len(self.image_ids), -1, dtype=np.int64)
        defective = np.flatnonzero(self.labels.any(axis=1))
        self.mask_slot[defective] = np.arange(len(defective))
        self.mask_bits = np.zeros(
            (len(defective), self.height, self.width), dtype=_bits_dtype(self.num_classes)
        )
        # per image and class: int32 [k, 2] (x, y) of up to ANCHORS_PER_CLASS defect pixels
        self.anchors: list[list[np.ndarray]] = [[] for _ in self.image_ids]
        self._load(folder)

    def _load(self, folder) -> None:
        def load(i: int) -> None:
            image_id = self.image_ids[i]
            self.images[i] = folder.read_image(image_id)
            if self.mask_slot[i] >= 0:
                masks = folder.masks(image_id)
                self.mask_bits[self.mask_slot[i]] = pack_masks(masks)
                if self.config.defect_focus > 0:  # only the focus step reads the anchors
                    rng = np.random.default_rng([self.config.seed, i])
                    self.anchors[i] = defect_anchors(masks, rng)

        with ThreadPoolExecutor(max(1, self.config.decode_threads)) as pool:
            list(pool.map(load, range(len(self.image_ids))))
        log.info(
            "cached %d images (%d with defects): %.0f MiB",
            len(self.image_ids), len(self.mask_bits),
            (self.images.nbytes + self.mask_bits.nbytes) / 2**20,
        )

    def crop(self, index: int, x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
        """uint8 [t, t] pixels and bool [C] labels of the crop at (x, y) of image `index`."""
        t = self.config.tile
        pixels = self.images[index, y : y + t, x : x + t]
        slot = self.mask_slot[index]
        if slot < 0:
            return pixels, np.zeros(self.num_classes, dtype=bool)
        counts = class_pixel_counts(self.mask_bits[slot, y : y + t, x : x + t], self.num_classes)
        return pixels, counts >= self.config.min_pixels

    def crop_batch(self, plans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Augmented crops of a plan batch: uint8 [n, t, t, 1], float32 labels [n, C]."""
        t = self.config.tile
        tiles = np.empty((len(plans), t, t, 1), dtype=np.uint8)
        labels = np.empty((len(plans), self.num_classes), dtype=np.float32)
        for row, (index, x, y, flip_h, flip_v, turns) in enumerate(np.asarray(plans)):
            pixels, labels[row] = self.crop(int(index), int(x), int(y))
            tiles[row, ..., 0] = augment_tile(pixels, flip_h, flip_v, turns)
        return tiles, labels


def augment_tile(tile: np.ndarray, flip_h, flip_v, turns) -> np.ndarray:
    """Flip left-right, then up-down, then rotate by `turns` quarter turns (a view, no copy)."""
    if flip_h:
        tile = tile[:, ::-1]
    if flip_v:
        tile = tile[::-1, :]
    return np.rot90(tile, k=int(turns))


def defect_anchors(masks: np.ndarray, rng) -> list[np.ndarray]:
    """Per class: int32 [k, 2] (x, y) of up to ANCHORS_PER_CLASS random pixels of its mask."""
    anchors = []
    for mask in masks:
        ys, xs = np.nonzero(mask)
        pick = rng.choice(len(xs), size=min(len(xs), ANCHORS_PER_CLASS), replace=False)
        anchors.append(np.column_stack([xs[pick], ys[pick]]).astype(np.int32))
    return anchors


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """bool [C, H, W] -> one integer per pixel with bit c set where class c + 1 is."""
    dtype = _bits_dtype(len(masks))
    bits = np.zeros(masks.shape[1:], dtype=dtype)
    for c, mask in enumerate(masks):
        bits |= mask.astype(dtype) << dtype(c)
    return bits


def class_pixel_counts(bits: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 [C]: pixels of each class in packed class bits (the crop rule's counts)."""
    return np.array(
        [np.count_nonzero(bits & bits.dtype.type(1 << c)) for c in range(num_classes)]
    )


def unpack_masks(bits: np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse of `pack_masks`: bool [C, h, w]."""
    shifts = np.arange(num_classes, dtype=bits.dtype)[:, None, None]
    return ((bits[None] >> shifts) & 1).astype(bool)


def sampling_weights(labels: np.ndarray, oversample: float) -> np.ndarray:
    """Per image probability: images of a class c are up-weighted by (n_max / n_c) ** oversample.

    n_c counts the images with class c; an image with several classes takes its rarest one's
    weight, defect-free images weight 1. oversample 0 = uniform.
    """
    if oversample < 0:
        raise DataError(f"oversample must be >= 0, got {oversample}")
    counts = labels.sum(axis=0).astype(float)
    present = counts > 0
    boost = np.ones(labels.shape[1])
    if present.any():
        boost[present] = (counts[present].max() / counts[present]) ** oversample
    weights = np.where(labels, boost[None, :], 1.0).max(axis=1, initial=1.0)
    return weights / weights.sum()


class CropPlanner:
    """Infinite stream of plan batches int32 [batch, 6] (see PLAN_COLUMNS) from a seed."""

    def __init__(self, source: CropSource, config: PipelineConfig, stream: int = 0) -> None:
        self.source = source
        self.config = config
        self.stream = stream  # e.g. the first epoch of a resumed run: new crops, same seed
        self.weights = sampling_weights(source.labels, config.oversample)

    def batches(self) -> Iterator[np.ndarray]:
        rng = np.random.default_rng([self.config.seed, self.stream])
        n, size = len(self.weights), self.config.batch_size
        while True:
            index = rng.choice(n, size=size, p=self.weights)
            boxes = random_boxes(rng, self.source.height, self.source.width, size,
                                 self.config.tile)
            self._focus(rng, index, boxes)
            if self.config.augment:
                flips = rng.integers(0, 2, size=(size, 2))
                turns = rng.integers(0, 4, size=size)
            else:
                flips, turns = np.zeros((size, 2), int), np.zeros(size, int)
            yield np.column_stack([index, boxes[:, 0], boxes[:, 1], flips, turns]).astype(np.int32)

    def _focus(self, rng, index: np.ndarray, boxes: np.ndarray) -> None:
        """With chance defect_focus, move a defective image's box over one of its defect pixels
        (a class of the image chosen uniformly), anywhere in the box."""
        focus = rng.random(len(index)) < self.config.defect_focus
        t = self.config.tile
        for row in np.flatnonzero(focus):
            per_class = [a for a in self.source.anchors[index[row]] if len(a)]
            if not per_class:
                continue
            anchors = per_class[rng.integers(len(per_class))]
            px, py = anchors[rng.integers(len(anchors))]
            boxes[row, 0] = rng.integers(max(0, px - t + 1), min(px, self.source.width - t) + 1)
            boxes[row, 1] = rng.integers(max(0, py - t + 1), min(py, self.source.height - t) + 1)


def train_dataset(source: CropSource, config: PipelineConfig, stream: int = 0,
                  with_plans: bool = False):
    """Infinite tf.data.Dataset of (uint8 tiles [B, t, t, 1], float32 labels [B, C]) batches.

    `with_plans` adds the plan batch as a third element (tests, debugging).
    """
    import tensorflow as tf  # noqa: PLC0415

    planner = CropPlanner(source, config, stream)
    t, n_classes = config.tile, source.num_classes
    plans = tf.data.Dataset.from_generator(
        planner.batches,
        output_signature=tf.TensorSpec([config.batch_size, len(PLAN_COLUMNS)], tf.int32),
    )

    def load(plan_batch):
        tiles, labels = tf.numpy_function(
            source.crop_batch, [plan_batch], (tf.uint8, tf.float32), stateful=False
        )
        tiles.set_shape([config.batch_size, t, t, 1])
        labels.set_shape([config.batch_size, n_classes])
        if with_plans:
            return tiles, labels, plan_batch
        return tiles, labels

    dataset = plans.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)
