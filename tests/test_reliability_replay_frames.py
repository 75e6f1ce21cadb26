"""Replay and frames: the configured frame size, entries that are not files, declared sizes."""

from __future__ import annotations

import os
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from edge.imageio import UnreadableImage, WrongImageSize, declared_size, read_gray, scan_images
from tests.fixtures.edge_daemon import (
    DaemonProcess,
    daemon_sections,
    frame_with_tiles,
    write_config,
    write_frames,
)
from tests.test_edge_replay_source import read_all, replay


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tif"])
def test_declared_size_is_read_from_the_header_as_opencv_decodes_it(tmp_path, suffix):
    path = tmp_path / f"frame{suffix}"
    cv2.imwrite(str(path), np.random.default_rng(1).integers(0, 255, (200, 300), np.uint8))
    assert declared_size(path.read_bytes()) == (300, 200)
    assert read_gray(path, expected=(300, 200)).shape == (200, 300)
    with pytest.raises(WrongImageSize, match="image is 300x200, expected 1600x256"):
        read_gray(path, expected=(1600, 256))


def png_declaring(width: int, height: int) -> bytes:
    """A 1x1 PNG whose (CRC-correct) header declares width x height."""
    ok, encoded = cv2.imencode(".png", np.zeros((1, 1), np.uint8))
    data = bytearray(encoded.tobytes())
    header = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    return bytes(data)


def test_an_image_declaring_huge_dimensions_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(20000, 20000))
    assert path.stat().st_size < 200
    with pytest.raises(UnreadableImage, match="declares 20000x20000 pixels, more than the 67 MP"):
        read_gray(path)


@pytest.mark.parametrize("mode, options", [("L", {}), ("I;16B", {}), ("L", {"big_tiff": True})])
def test_tiff_sizes_written_by_pillow_are_read_from_the_header(tmp_path, mode, options):
    """Little-endian 8-bit, big-endian 16-bit (the byte order Pillow uses for I;16B), BigTIFF."""
    path = tmp_path / "frame.tif"
    Image.new(mode, (300, 200)).save(path, **options)
    assert path.read_bytes()[:2] == (b"MM" if mode == "I;16B" else b"II")
    assert declared_size(path.read_bytes()) == (300, 200)
    assert read_gray(path, expected=(300, 200)).shape == (200, 300)


def tiff_declaring(width: int, height: int, order: str, kind: int,
                   size_tags: tuple[int, int] = (256, 257), unsorted: bool = False) -> bytes:
    """A classic TIFF of one 8-bit pixel whose directory declares width x height, the two sizes
    as SHORT (kind 3) or LONG (kind 4), in little (<) or big (>) endian byte order; `size_tags`
    other than ImageWidth, ImageLength leave the size out, `unsorted` puts BitsPerSample first."""
    def entry(tag: int, entry_kind: int, number: int) -> bytes:
        value = (struct.pack(order + "HH", number, 0) if entry_kind == 3
                 else struct.pack(order + "I", number))
        return struct.pack(order + "HHI", tag, entry_kind, 1) + value

    pixel_at = 8 + 2 + 8 * 12 + 4  # header, entry count, 8 entries, next directory (none)
    # ImageWidth, ImageLength, BitsPerSample, Compression, Photometric, StripOffsets,
    # RowsPerStrip, StripByteCounts
    entries = [entry(size_tags[0], kind, width), entry(size_tags[1], kind, height),
               entry(258, 3, 8), entry(259, 3, 1), entry(262, 3, 1), entry(273, 4, pixel_at),
               entry(278, kind, height), entry(279, 4, 1)]
    if unsorted:
        entries.insert(0, entries.pop(2))
    header = (b"II" if order == "<" else b"MM") + struct.pack(order + "HI", 42, 8)
    directory = struct.pack(order + "H", len(entries)) + b"".join(entries) + bytes(4)
    return header + directory + b"\x80"


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("kind", [3, 4])
def test_a_tiff_declaring_huge_dimensions_is_refused_before_decoding(tmp_path, order, kind):
    small = tmp_path / "small.tif"
    small.write_bytes(tiff_declaring(1, 1, order, kind))
    assert declared_size(small.read_bytes()) == (1, 1)
    assert read_gray(small).shape == (1, 1)  # the crafted file is a valid TIFF
    side = 20000 if kind == 4 else 65000  # a SHORT holds at most 65535
    bomb = tmp_path / "bomb.tif"
    bomb.write_bytes(tiff_declaring(side, side, order, kind))
    assert declared_size(bomb.read_bytes()) == (side, side)
    with pytest.raises(UnreadableImage, match=f"declares {side}x{side} pixels, more than"):
        read_gray(bomb)


def test_a_tiff_with_unsorted_tags_is_still_checked_before_decoding(tmp_path):
    """libtiff decodes a directory whose tags are not in order, so the size check reads it too."""
    small = tmp_path / "small.tif"
    small.write_bytes(tiff_declaring(1, 1, "<", 4, unsorted=True))
    assert read_gray(small).shape == (1, 1)
    bomb = tmp_path / "bomb.tif"
    bomb.write_bytes(tiff_declaring(20000, 20000, "<", 4, unsorted=True))
    with pytest.raises(UnreadableImage, match="declares 20000x20000 pixels, more than"):
        read_gray(bomb)


def test_a_tiff_without_a_readable_size_is_refused_not_decoded(tmp_path):
    path = tmp_path / "nosize.tif"
    path.write_bytes(tiff_declaring(1, 1, ">", 3, size_tags=(254, 255)))  # (New)SubfileType
    assert declared_size(path.read_bytes()) is None
    with pytest.raises(UnreadableImage, match="TIFF header declares no readable size"):
        read_gray(path)


def test_links_and_directories_named_like_images_are_counted(tmp_path):
    folder = write_frames(tmp_path / "frames", {"a.png": frame_with_tiles([10])})
    os.symlink(folder / "missing.png", folder / "dangling.png")
    os.symlink(folder / "loop.png", folder / "loop.png")
    (folder / "folder.png").mkdir()
    os.symlink(folder / "a.png", folder / "b.png")  # a good link is an image
    files, others = scan_images(folder)
    assert [p.name for p in files] == ["a.png", "b.png"]
    assert [(p.name, why) for p, why in others] == [
        ("dangling.png", "dangling symbolic link"), ("folder.png", "a directory"),
        ("loop.png", "symbolic link loop")]
    source = replay(folder)
    with source:
        assert len(read_all(source)) == 2
        assert source.counters["skipped_not_file"] == 3


def test_the_configured_frame_size_wins_over_an_odd_first_image(tmp_path):
    frames = {"00-odd.png": frame_with_tiles([10, 10])}
    frames |= {f"{i:02d}.png": frame_with_tiles([10] * 6) for i in range(1, 5)}
    folder = write_frames(tmp_path / "frames", frames)
    source = replay(folder, width=6 * 256, height=256)
    with source:
        assert [f.frame_id for f in read_all(source)] == [f"{i:02d}.png" for i in range(1, 5)]
        assert source.counters["skipped_size"] == 1


def test_edge_replay_honours_camera_size_and_fails_when_most_frames_had_another(
    tmp_path, mqtt_broker, mean_model
):
    frames = {"00-odd.png": frame_with_tiles([10, 10])}
    frames |= {f"{i:02d}.png": frame_with_tiles([10] * 3) for i in range(1, 5)}
    images = write_frames(tmp_path / "frames", frames)
    codes = {}
    for sized in (True, False):
        sections = daemon_sections(tmp_path, mqtt_broker, mean_model, images)
        if sized:
            sections["camera"].update(width=3 * 256, height=256)
        config = write_config(tmp_path / f"edge-{sized}.toml", sections)
        daemon = DaemonProcess(config, "--images", str(images), command="replay")
        try:
            codes[sized] = (daemon.wait(60), daemon.log)
        finally:
            daemon.stop()
    (sized_code, sized_log), (unsized_code, unsized_log) = codes[True], codes[False]
    assert sized_code == 0 and "4 processed, 0 failed, 1 files skipped" in sized_log
    assert unsized_code == 1 and "4 images skipped for their size, 1 processed" in unsized_log
