"""The one image reader: damaged files give UnreadableImage with a reason, never an OpenCV error."""

import cv2
import numpy as np
import pytest

from edge.errors import DataError
from edge.imageio import UnreadableImage, read_gray
from train.data.images import read_gray as read_data_image


def bmp_with_height(tmp_path, height: int):
    ok, data = cv2.imencode(".bmp", np.zeros((4, 4), np.uint8))
    assert ok
    data = bytearray(data.tobytes())
    data[22:26] = height.to_bytes(4, "little", signed=True)  # BITMAPINFOHEADER biHeight
    path = tmp_path / "frame.bmp"
    path.write_bytes(bytes(data))
    return path


def test_absurd_declared_size_is_unreadable_not_an_opencv_error(tmp_path):
    path = bmp_with_height(tmp_path, 0x19_000_000)
    # refused from its header now, before OpenCV is asked to allocate it
    with pytest.raises(UnreadableImage, match=r"declares \d+x\d+ pixels, more than the 67 MP"):
        read_gray(path)
    with pytest.raises(DataError, match=r"frame\.bmp: declares \d+x\d+ pixels"):
        read_data_image(path)


def test_empty_file_is_unreadable_for_both_readers(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(UnreadableImage, match="empty file"):
        read_gray(path)
    with pytest.raises(DataError, match=r"empty\.png: empty file"):
        read_data_image(path)


def test_a_good_image_reads_as_gray(tmp_path):
    path = tmp_path / "ok.png"
    cv2.imwrite(str(path), np.full((8, 5, 3), 200, np.uint8))
    image = read_gray(path)
    assert image.shape == (8, 5) and image.dtype == np.uint8 and int(image[0, 0]) == 200
