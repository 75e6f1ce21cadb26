"""Severstal folder reader: both CSV layouts, class maps, and one clear error per bad input."""

import numpy as np
import pytest

from edge.errors import DataError
from tests.fixtures.data import write_folder
from train.data import rle
from train.data.classmap import ClassMap
from train.data.folder import SeverstalFolder
from train.data.problems import Problems

W, H = 64, 32  # small images: 2048 pixels each
IMAGES = {"a.jpg": (W, H), "b.jpg": (W, H), "c.jpg": (W, H)}
SPLIT_CSV = (
    "ImageId,ClassId,EncodedPixels\n"
    "a.jpg,1,1 10 100 5\n"
    "a.jpg,3,200 40\n"
    "b.jpg,4,33 64\n"
    "b.jpg,2,1000 3\n"
)
JOINED_CSV = (
    "ImageId_ClassId,EncodedPixels\n"
    "a.jpg_1,1 10 100 5\na.jpg_2,\na.jpg_3,200 40\na.jpg_4,\n"
    "b.jpg_1,\nb.jpg_2,1000 3\nb.jpg_3,\nb.jpg_4,33 64\n"
    "c.jpg_1,\nc.jpg_2,\nc.jpg_3,\nc.jpg_4,\n"
)


def _open(tmp_path, csv_text, images=IMAGES, **kwargs):
    return SeverstalFolder.open(write_folder(tmp_path, csv_text, images), **kwargs)


def _error(tmp_path, csv_text, images=IMAGES, **kwargs) -> str:
    with pytest.raises(DataError) as caught:
        _open(tmp_path, csv_text, images, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_reads_split_layout(tmp_path):
    folder = _open(tmp_path, SPLIT_CSV)
    assert folder.image_ids == ["a.jpg", "b.jpg", "c.jpg"]  # c.jpg: defect-free, not in the CSV
    assert (folder.width, folder.height) == (W, H)
    assert folder.class_ids == [1, 2, 3, 4]
    assert folder.labels.tolist() == [
        [True, False, True, False],
        [False, True, False, True],
        [False, False, False, False],
    ]
    masks = folder.masks("a.jpg")
    assert masks.shape == (4, H, W) and masks.dtype == bool
    np.testing.assert_array_equal(masks[0], rle.decode("1 10 100 5", H, W))
    assert masks[0].sum() == 15 and masks[2].sum() == 40 and not masks[1].any()
    assert folder.read_image("c.jpg").shape == (H, W)


def test_both_layouts_read_identically(tmp_path):
    split = _open(tmp_path / "split", SPLIT_CSV)
    joined = _open(tmp_path / "joined", JOINED_CSV)
    assert joined.image_ids == split.image_ids
    assert joined.class_ids == split.class_ids
    np.testing.assert_array_equal(joined.labels, split.labels)
    for image_id in split.image_ids:
        np.testing.assert_array_equal(joined.masks(image_id), split.masks(image_id))
    assert joined.summary()["classes"] == split.summary()["classes"]


def test_class_map_drops_and_remaps(tmp_path):
    folder = _open(tmp_path, SPLIT_CSV, class_map=ClassMap.parse("1:1,2:0,3:2,4:3"))
    assert folder.class_ids == [1, 2, 3]
    assert folder.class_names == ["rolled-in scale", "scratches", "rolling films"]
    assert folder.labels.tolist() == [[True, True, False], [False, False, True], [False] * 3]
    np.testing.assert_array_equal(folder.masks("a.jpg")[1], rle.decode("200 40", H, W))
    assert not folder.masks("b.jpg")[:2].any()  # Severstal class 2 was dropped


def test_rows_mapped_to_one_class_are_united(tmp_path):
    folder = _open(tmp_path, SPLIT_CSV, class_map=ClassMap.parse("1:1,2:1,3:1,4:1"))
    assert folder.class_ids == [1]
    expected = rle.decode("1 10 100 5", H, W) | rle.decode("200 40", H, W)
    np.testing.assert_array_equal(folder.masks("a.jpg")[0], expected)
    assert folder.summary()["classes"][0]["mask_pixels"] == 15 + 40 + 64 + 3


def test_summary_counts(tmp_path):
    summary = _open(tmp_path, SPLIT_CSV).summary()
    assert summary["images"] == 3 and summary["defect_free"] == 1
    assert [c["images"] for c in summary["classes"]] == [1, 1, 1, 1]
    assert [c["mask_pixels"] for c in summary["classes"]] == [15, 3, 40, 64]


def test_content_hash_changes_with_the_csv(tmp_path):
    first = _open(tmp_path / "a", SPLIT_CSV).content_hash()
    assert _open(tmp_path / "b", SPLIT_CSV).content_hash() == first
    assert _open(tmp_path / "c", SPLIT_CSV.replace("200 40", "200 41")).content_hash() != first


@pytest.mark.parametrize(
    ("bad_row", "expected"),
    [
        ("a.jpg,2,1 2 3", "row 6 (image a.jpg): odd number of RLE tokens"),
        ("a.jpg,2,1 x", "row 6 (image a.jpg): RLE token 'x' is not an integer"),
        ("a.jpg,2,0 5", "row 6 (image a.jpg): RLE start 0 is below 1"),
        ("a.jpg,2,2040 10", "row 6 (image a.jpg): RLE run '2040 10' ends at pixel 2049, past"),
        ("a.jpg,2,1 10 5 2", "row 6 (image a.jpg): RLE run '5 2' overlaps"),
        ("a.jpg,7,1 2", "row 6 (image a.jpg): Severstal class 7 is not in the class map"),
        ("a.jpg,1,5 5", "row 6: duplicate of row 2 (image a.jpg, class 1)"),
        ("a.jpg,two,1 2", "row 6: class id 'two' is not a positive integer"),
        ("a.jpg,1", "row 6: 2 fields, expected 3"),
    ],
)
def test_bad_row_names_file_row_and_value(tmp_path, bad_row, expected):
    class_map = ClassMap.parse("1:1,2:2,3:3,4:4")
    message = _error(tmp_path, SPLIT_CSV + bad_row + "\n", class_map=class_map)
    assert str(tmp_path / "train.csv") in message
    assert expected in message


def test_bad_header(tmp_path):
    assert "header ImageId,Class,Pixels is neither" in _error(tmp_path, "ImageId,Class,Pixels\n")


def test_missing_csv(tmp_path):
    write_folder(tmp_path, "", IMAGES)
    (tmp_path / "train.csv").unlink()
    with pytest.raises(DataError, match="train.csv: file not found"):
        SeverstalFolder.open(tmp_path)


def test_image_named_in_csv_but_missing(tmp_path):
    csv_text = SPLIT_CSV + "zz.jpg,1,1 2\nyy.jpg,1,1 2\n"
    message = _error(tmp_path, csv_text)
    assert "2 images named in train.csv are missing from" in message
    assert "yy.jpg, zz.jpg" in message


def test_truncated_jpeg(tmp_path):
    write_folder(tmp_path, SPLIT_CSV, IMAGES)
    path = tmp_path / "train_images" / "b.jpg"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DataError, match=r"b\.jpg: truncated JPEG \(no end-of-image marker\)"):
        SeverstalFolder.open(tmp_path, check_images=True)
    folder = SeverstalFolder.open(tmp_path)  # without check_images the image is read on use
    with pytest.raises(DataError, match=r"b\.jpg: truncated JPEG"):
        folder.read_image("b.jpg")


def test_undecodable_image(tmp_path):
    write_folder(tmp_path, SPLIT_CSV, IMAGES)
    (tmp_path / "train_images" / "b.jpg").write_bytes(b"not an image at all\xff\xd9")
    with pytest.raises(DataError, match=r"b\.jpg: not a decodable image"):
        SeverstalFolder.open(tmp_path, check_images=True)


def test_wrong_sizes_are_listed(tmp_path):
    images = {**IMAGES, "d.jpg": (80, H), "e.jpg": (W, 16)}
    message = _error(tmp_path, SPLIT_CSV, images, check_images=True)
    assert (
        f"2 images in {tmp_path / 'train_images'} have the wrong size (expected 64x32)" in message
    )
    assert "d.jpg (80x32), e.jpg (64x16)" in message


def test_read_image_checks_the_size(tmp_path):
    problems = Problems(strict=False)  # the header check at open() already lists d.jpg
    folder = _open(tmp_path, SPLIT_CSV, {**IMAGES, "d.jpg": (80, H)}, problems=problems)
    assert len(problems) == 1 and "d.jpg (80x32)" in problems.messages[0]
    with pytest.raises(DataError, match=r"d\.jpg: image is 80x32, expected 64x32"):
        folder.read_image("d.jpg")


def test_unknown_image_id(tmp_path):
    with pytest.raises(DataError, match="image x.jpg is not in"):
        _open(tmp_path, SPLIT_CSV).masks("x.jpg")


def test_collecting_problems_lists_them_all(tmp_path):
    images = {**IMAGES, "d.jpg": (80, H)}
    csv_text = SPLIT_CSV + "a.jpg,2,1 2 3\nc.jpg,9,1 1\nq.jpg,1,4 4\n"
    write_folder(tmp_path, csv_text, images)
    problems = Problems(strict=False)
    folder = SeverstalFolder.open(
        tmp_path, ClassMap.parse("1:1,2:2,3:3,4:4"), check_images=True, problems=problems
    )
    assert len(problems) == 4, problems.messages
    joined = "\n".join(problems.messages)
    for fragment in (
        "row 6 (image a.jpg): odd",
        "row 7 (image c.jpg): Severstal class 9",
        "missing from",
        "wrong size",
    ):
        assert fragment in joined
    assert folder.labels.sum() == 4  # the valid rows are still read
