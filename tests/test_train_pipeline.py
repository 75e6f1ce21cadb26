"""Training input pipeline: crops, labels from the masks, augmentation, sampling, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import DataError
from train.data.crops import crop_labels, crop_pixel_counts, random_boxes
from train.data.folder import SeverstalFolder
from train.pipeline import (
    CropPlanner,
    CropSource,
    PipelineConfig,
    class_pixel_counts,
    pack_masks,
    sampling_weights,
    train_dataset,
    unpack_masks,
)


@pytest.fixture(scope="module")
def folder(tiny_synth_data) -> SeverstalFolder:
    return SeverstalFolder.open(tiny_synth_data)


@pytest.fixture(scope="module")
def source(folder) -> CropSource:
    config = PipelineConfig(batch_size=8, seed=5, defect_focus=0.5, oversample=1.0)
    return CropSource(folder, folder.image_ids, config)


def reference_augment(tile: np.ndarray, flip_h, flip_v, turns) -> np.ndarray:
    """Independent statement of the augmentation: np.flip then counter-clockwise quarter turns."""
    if flip_h:
        tile = np.flip(tile, axis=1)
    if flip_v:
        tile = np.flip(tile, axis=0)
    for _ in range(int(turns)):
        tile = np.rot90(tile)
    return tile


def test_packed_masks_round_trip(folder):
    image_id = next(i for i, row in zip(folder.image_ids, folder.labels, strict=True) if row.any())
    masks = folder.masks(image_id)
    np.testing.assert_array_equal(unpack_masks(pack_masks(masks), len(masks)), masks)


def test_packed_counts_equal_the_summed_area_table_counts(source, folder):
    rng = np.random.default_rng(0)
    for index, image_id in enumerate(source.image_ids):
        if source.mask_slot[index] < 0:
            continue
        masks = folder.masks(image_id)
        boxes = random_boxes(rng, folder.height, folder.width, 20)
        expected = crop_pixel_counts(masks, boxes)
        bits = source.mask_bits[source.mask_slot[index]]
        for box, counts in zip(boxes, expected, strict=True):
            x, y, w, h = box
            got = class_pixel_counts(bits[y : y + h, x : x + w], len(masks))
            np.testing.assert_array_equal(got, counts)


def test_pipeline_crops_and_labels_match_the_images_and_masks(source, folder):
    dataset = train_dataset(source, source.config, with_plans=True)
    seen_positive = np.zeros(folder.labels.shape[1], dtype=int)
    turns_seen = set()
    for tiles, labels, plans in dataset.take(6):
        tiles, labels, plans = tiles.numpy(), labels.numpy(), plans.numpy()
        assert tiles.dtype == np.uint8 and tiles.shape == (8, 256, 256, 1)
        for tile, label, (index, x, y, flip_h, flip_v, turns) in zip(tiles, labels, plans,
                                                                     strict=True):
            image_id = source.image_ids[index]
            box = np.array([[x, y, 256, 256]])
            expected = crop_labels(folder.masks(image_id), box, source.config.min_pixels)[0]
            np.testing.assert_array_equal(label.astype(bool), expected)
            crop = folder.read_image(image_id)[y : y + 256, x : x + 256]
            np.testing.assert_array_equal(tile[..., 0], reference_augment(crop, flip_h, flip_v,
                                                                          turns))
            seen_positive += expected
            turns_seen.add(int(turns))
    assert seen_positive.min() > 0, "every class should appear in 48 focused crops"
    assert turns_seen == {0, 1, 2, 3}


def test_same_seed_gives_the_same_batches(source):
    def first_batches(stream):
        dataset = train_dataset(source, source.config, stream=stream, with_plans=True)
        return [p.numpy() for _, _, p in dataset.take(2)]

    a, b, c = first_batches(0), first_batches(0), first_batches(1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])


def test_sampling_weights_boost_rare_classes():
    labels = np.zeros((14, 2), dtype=bool)
    labels[:8, 0] = True  # 8 images of class 1
    labels[8:10, 1] = True  # 2 images of class 2; 4 defect-free
    uniform = sampling_weights(labels, 0.0)
    np.testing.assert_allclose(uniform, np.full(14, 1 / 14))
    boosted = sampling_weights(labels, 1.0)
    assert boosted[8] / boosted[0] == pytest.approx(8 / 2)
    assert boosted[0] == pytest.approx(boosted[12])  # the commonest class keeps weight 1
    with pytest.raises(DataError, match="oversample"):
        sampling_weights(labels, -1.0)


def test_oversampling_draws_rare_class_images_more_often(folder):
    rarest = int(np.argmin(folder.labels.sum(axis=0)))
    rates = []
    for oversample in (0.0, 2.0):
        config = PipelineConfig(batch_size=64, seed=1, oversample=oversample, augment=False)
        source = CropSource(folder, folder.image_ids, config)
        plans = next(CropPlanner(source, config).batches())
        rates.append(source.labels[plans[:, 0], rarest].mean())
    assert rates[1] > rates[0]


def test_defect_focus_puts_every_crop_of_a_defective_image_on_a_defect(folder):
    config = PipelineConfig(batch_size=64, seed=2, defect_focus=1.0)
    source = CropSource(folder, folder.image_ids, config)
    plans = next(CropPlanner(source, config).batches())
    for index, x, y, *_ in plans:
        if source.mask_slot[index] >= 0:
            bits = source.mask_bits[source.mask_slot[index], y : y + 256, x : x + 256]
            assert np.count_nonzero(bits) > 0


def test_empty_training_split_is_a_data_error(folder):
    with pytest.raises(DataError, match="training split is empty"):
        CropSource(folder, [], PipelineConfig())
