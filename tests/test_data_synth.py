"""Synthetic generator: determinism, masks equal to the drawn pixels, class statistics."""

import cv2
import numpy as np
import pytest

from edge.errors import DataError
from tests.fixtures.data import SYNTH_PARAMS
from train.data import synth
from train.data.folder import SeverstalFolder

SMALL = {"width": 512, "height": 256, "defect_free": 0.2}


def _pixels(folder):
    return [folder.read_image(i) for i in folder.image_ids]


def test_same_seed_gives_identical_csv_and_pixels(tmp_path):
    first = synth.generate(tmp_path / "a", 8, seed=11, **SMALL)
    second = synth.generate(tmp_path / "b", 8, seed=11, **SMALL)
    assert (first / "train.csv").read_bytes() == (second / "train.csv").read_bytes()
    a, b = SeverstalFolder.open(first), SeverstalFolder.open(second)
    assert a.image_ids == b.image_ids
    for x, y in zip(_pixels(a), _pixels(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_different_seeds_differ(tmp_path):
    a = SeverstalFolder.open(synth.generate(tmp_path / "a", 4, seed=1, **SMALL))
    b = SeverstalFolder.open(synth.generate(tmp_path / "b", 4, seed=2, **SMALL))
    assert set(a.image_ids).isdisjoint(b.image_ids)
    assert (a.root / "train.csv").read_bytes() != (b.root / "train.csv").read_bytes()
    assert np.abs(_pixels(a)[0].astype(int) - _pixels(b)[0]).mean() > 5


def test_image_ids_look_like_kaggle_and_do_not_depend_on_n():
    ids = synth.make_image_ids(7, 50)
    assert len(set(ids)) == 50
    assert all(len(i) == 13 and i.endswith(".jpg") and int(i[:9], 16) >= 0 for i in ids)
    assert synth.make_image_ids(7, 10) == ids[:10]


@pytest.fixture(scope="module")
def synth_folder(synth_data):
    return SeverstalFolder.open(synth_data, check_images=True)


def test_fixture_folder_is_valid(synth_folder):
    assert len(synth_folder) == SYNTH_PARAMS["images"]
    assert (synth_folder.width, synth_folder.height) == (1600, 256)
    assert synth_folder.class_ids == [1, 2, 3]


def test_masks_are_exactly_the_drawn_pixels(synth_folder):
    p = SYNTH_PARAMS
    ids = synth.make_image_ids(p["seed"], p["images"])
    assert sorted(ids) == synth_folder.image_ids
    checked = 0
    for index in range(0, p["images"], 4):
        image_id = ids[index]
        drawn = synth.render(p["seed"], index, image_id, p["width"], p["height"], p["defect_free"])
        np.testing.assert_array_equal(synth_folder.masks(image_id), drawn.masks)
        np.testing.assert_array_equal(
            synth_folder.labels_of([image_id])[0], drawn.masks.any((1, 2))
        )
        change = np.abs(drawn.image.astype(int) - drawn.background)
        inside = drawn.masks.any(axis=0)
        assert not change[~inside].any()  # nothing outside the masks is touched
        if inside.any():
            checked += 1
            assert change[inside].min() >= synth.MIN_CONTRAST - 0.5
            stored = synth_folder.read_image(image_id).astype(int)  # after JPEG
            assert np.abs(stored - drawn.background)[inside].mean() >= 0.6 * synth.MIN_CONTRAST
    assert checked >= 20


def test_defects_stand_out_from_their_surroundings(synth_folder):
    """Per defective image: the mask differs from a ring of background around it by far more than
    the background varies, so the defects can be learned."""
    contrasts = []
    for image_id in synth_folder.image_ids[:120]:
        masks = synth_folder.masks(image_id)
        if not masks.any():
            continue
        image = synth_folder.read_image(image_id).astype(np.float32)
        inside = masks.any(axis=0).astype(np.uint8)
        ring = cv2.dilate(inside, np.ones((9, 9), np.uint8)) & ~inside.astype(bool)
        contrasts.append(abs(image[inside.astype(bool)].mean() - image[ring.astype(bool)].mean()))
    assert len(contrasts) > 40
    assert np.median(contrasts) > 15


def test_class_statistics_follow_the_paper(synth_folder):
    labels = synth_folder.labels
    defect_free = (~labels.any(axis=1)).mean()
    assert 0.28 < defect_free < 0.55  # 0.4 drawn, +-3 sd on 240 images, plus trimmed defects
    per_class = labels.sum(axis=0)
    assert per_class[0] < per_class[1] and per_class[0] < per_class[2]  # class I is the rarest
    assert (labels.sum(axis=1) > 1).any()  # several classes share some images
    pixels = {c: [] for c in range(3)}
    for image_id in synth_folder.image_ids:
        for c, n in enumerate(synth_folder.mask_pixels(image_id)):
            if n:
                pixels[c].append(n)
    assert np.median(pixels[0]) < np.median(pixels[1]) < np.median(pixels[2])


def test_refuses_a_folder_with_images(tmp_path):
    synth.generate(tmp_path, 1, seed=0, **SMALL)
    with pytest.raises(DataError, match="already contains images"):
        synth.generate(tmp_path, 1, seed=0, **SMALL)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_images": 0}, "number of images must be >= 1"),
        ({"defect_free": 1.5}, "defect-free fraction 1.5 is not between 0 and 1"),
        ({"width": 32}, "image size 32x256 is too small"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    arguments = {"n_images": 2, "seed": 0, **SMALL, **kwargs}
    with pytest.raises(DataError, match=message):
        synth.generate(tmp_path, **arguments)
