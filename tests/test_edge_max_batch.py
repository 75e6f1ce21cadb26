"""model.max_batch unset = the tiles of one frame (edge.inference.batchsize), known before the
camera opens from tiling.roi, camera.width/height or the first replay image."""

from __future__ import annotations

import logging

import numpy as np

from edge.config import parse_config
from edge.inference.batchsize import FALLBACK_MAX_BATCH, configured_max_batch
from tests.fixtures.edge_daemon import write_frames, write_mean_model


def config(tmp_path, camera: dict, model: dict | None = None, tiling: dict | None = None):
    sections = {
        "site": {"line": "L1", "camera": "cam1"},
        "camera": camera,
        "model": {"path": str(write_mean_model(tmp_path / "model")), **(model or {})},
        "mqtt": {"host": "127.0.0.1"},
        "outbox": {"path": str(tmp_path / "outbox.sqlite")},
    }
    if tiling:
        sections["tiling"] = tiling
    return parse_config(sections)


def test_unset_max_batch_is_the_tile_count_of_one_frame(tmp_path, caplog):
    images = write_frames(tmp_path / "frames", {"a.png": np.zeros((256, 1600), np.uint8)})
    replay = {"type": "replay", "path": str(images)}
    with caplog.at_level(logging.INFO, logger="edge.inference.batchsize"):
        assert configured_max_batch(config(tmp_path, replay)) == 7  # 1600x256: 7 tiles of 256
    assert "the tiles of one 1600x256 frame" in caplog.text
    assert configured_max_batch(config(tmp_path, replay, tiling={"overlap": 128})) == 12
    roi = {"roi": {"x": 0, "y": 0, "width": 512, "height": 256}}
    assert configured_max_batch(config(tmp_path, replay, tiling=roi)) == 2
    sized = {**replay, "width": 800, "height": 512}
    assert configured_max_batch(config(tmp_path, sized)) == 8  # 4 x 2 tiles (the last flush)
    assert configured_max_batch(config(tmp_path, replay, model={"max_batch": 3})) == 3


def test_a_camera_that_alone_knows_its_frame_size_gets_the_fallback(tmp_path):
    genicam = {"type": "genicam"}
    assert configured_max_batch(config(tmp_path, genicam)) == FALLBACK_MAX_BATCH
    sized = {"type": "genicam", "width": 2048, "height": 256}
    assert configured_max_batch(config(tmp_path, sized)) == 8  # 2048 / 256
