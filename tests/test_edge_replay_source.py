"""Replay source: order, pacing, skipping unreadable or wrongly sized files, looping."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from edge.config import ReplayCameraConfig
from edge.errors import ConfigError
from edge.sources import CameraState, make_source
from edge.sources.replay import ReplaySource
from tests.fixtures.edge_daemon import write_frames


def read_all(source, limit: int = 100) -> list:
    frames = []
    while source.state is CameraState.OK and len(frames) < limit:
        frame = source.read(1.0)
        if frame is not None:
            frames.append(frame)
    return frames


def replay(path, **keys) -> ReplaySource:
    return make_source(ReplayCameraConfig(type="replay", path=path, **keys))


@pytest.fixture
def folder(tmp_path):
    images = {f"{i:02d}.png": np.full((256, 512), 10 * i, np.uint8) for i in range(5)}
    folder = write_frames(tmp_path / "frames", images)
    ok, jpeg = cv2.imencode(".jpg", np.full((256, 512), 99, np.uint8))
    (folder / "02a-truncated.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 2])
    (folder / "02b-garbage.png").write_bytes(b"\x89PNG not really")
    cv2.imwrite(str(folder / "03a-small.png"), np.zeros((256, 300), np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_frames_come_in_name_order_and_bad_files_are_counted_and_skipped(folder, caplog):
    with replay(folder) as source:
        frames = read_all(source)
        assert source.state is CameraState.FINISHED
        assert source.read(0.01) is None
        counters = source.counters
    assert [f.frame_id for f in frames] == [f"{i:02d}.png" for i in range(5)]
    assert [int(f.image[0, 0]) for f in frames] == [0, 10, 20, 30, 40]
    assert all(f.image.dtype == np.uint8 and f.image.shape == (256, 512) for f in frames)
    assert counters["skipped_unreadable"] == 2 and counters["skipped_size"] == 1
    assert counters["frames"] == 5
    assert "truncated JPEG" in caplog.text and "03a-small.png: image is 300x256" in caplog.text
    assert source.state is CameraState.STOPPED


def test_expected_size_from_the_config(folder):
    with replay(folder, width=300, height=256) as source:
        frames = read_all(source)
    assert [f.frame_id for f in frames] == ["03a-small.png"]


def test_rate_paces_frames_and_loop_starts_again(folder):
    with replay(folder, rate=25, loop=True) as source:
        started = time.monotonic()
        frames = read_all(source, limit=11)
        elapsed = time.monotonic() - started
    assert [f.frame_id for f in frames][5:7] == ["00.png", "01.png"]
    assert frames[6].meta["pass"] == 1
    # 11 frames at 25 fps: the 11th is due 0.4 s after the first
    assert 0.38 <= elapsed <= 0.8, elapsed


def test_a_read_timeout_shorter_than_the_frame_period_returns_none(folder):
    with replay(folder, rate=2) as source:
        assert source.read(1.0) is not None
        assert source.read(0.05) is None
        assert source.read(1.0) is not None


def test_missing_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="camera.path: .*nowhere: folder not found"):
        replay(tmp_path / "nowhere").open()


def test_an_empty_folder_finishes_at_once(tmp_path):
    with replay(tmp_path) as source:
        assert source.state is CameraState.FINISHED and source.read(0.01) is None
