"""model.max_batch when it is not set: the tile count of one frame, so a frame is one call.

A larger batch than a frame's tiles costs memory and start time for nothing (ResNet50 with 16
against 7 tiles: +150 MiB and twice the start time); a smaller one splits every frame. The frame
size is known before the camera opens from tiling.roi, camera.width/height, or (replay) the first
image's header; a GenICam camera with neither set falls back to FALLBACK_MAX_BATCH.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edge.config import MAX_BATCH_LIMIT, EdgeConfig
from edge.errors import SteelInspectError
from edge.imageio import declared_size, scan_images
from edge.inference.tiling import tile_boxes

log = logging.getLogger(__name__)

FALLBACK_MAX_BATCH = 8  # a Severstal 1600x256 frame has 7 tiles of 256 px


def frame_size(config: EdgeConfig) -> tuple[int, int] | None:
    """(width, height) of the frames the model will see, or None when only the camera knows."""
    roi = config.tiling.roi
    if roi is not None:
        return roi.width, roi.height
    camera = config.camera
    if camera.width is not None and camera.height is not None:
        return camera.width, camera.height
    if camera.type != "replay":
        return None
    try:
        files, _ = scan_images(Path(camera.path))
        if not files:
            return None
        with open(files[0], "rb") as stream:
            header = stream.read(1 << 16)
    except OSError:
        return None
    size = declared_size(header)
    if size is None:
        return None
    width, height = size
    return camera.width or width, camera.height or height


def model_tile(path: Path) -> int:
    """The tile size the model's card names (256 when the card cannot be read: loading the
    model then says why)."""
    from edge.inference.model import load_card, read_manifest  # noqa: PLC0415
    from edge.inference.store import resolve_model_path  # noqa: PLC0415

    try:
        path = resolve_model_path(path)
        return load_card(path, read_manifest(path)).input.height
    except SteelInspectError:
        return 256


def configured_max_batch(config: EdgeConfig, engine: Path | None = None) -> int:
    """model.max_batch, else the tile count of one frame for the configured model (`engine`:
    model.path already resolved, so a store's `current` is read once per load)."""
    if config.model.max_batch is not None:
        return config.model.max_batch
    return default_max_batch(config, model_tile(engine or config.model.path))


def default_max_batch(config: EdgeConfig, tile: int) -> int:
    """The tile count of one frame for a `tile` px model."""
    size = frame_size(config)
    if size is None:
        log.info("model.max_batch: frame size unknown until the camera opens; using %d (set "
                 "camera.width/height or model.max_batch)", FALLBACK_MAX_BATCH)
        return FALLBACK_MAX_BATCH
    width, height = size
    try:
        count = len(tile_boxes(height, width, tile, config.tiling.stride_for(tile)))
    except SteelInspectError:  # a frame smaller than a tile: the pipeline says so per frame
        return FALLBACK_MAX_BATCH
    count = min(count, MAX_BATCH_LIMIT)  # a huge frame is inferred in chunks of the limit
    log.info("model.max_batch: %d, the tiles of one %dx%d frame", count, width, height)
    return count
