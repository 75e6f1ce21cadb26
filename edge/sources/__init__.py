"""Frame sources: `make_source(camera_config)` builds the one the configuration names.

The GenICam source pulls in harvesters, so it is imported only when a genicam camera is configured.
"""

from __future__ import annotations

from edge.config import GenICamCameraConfig, ReplayCameraConfig
from edge.errors import ConfigError
from edge.sources.base import CameraState, Frame, FrameSource

__all__ = ["CameraState", "Frame", "FrameSource", "make_source"]


def make_source(camera_config: GenICamCameraConfig | ReplayCameraConfig) -> FrameSource:
    """A closed source for the `[camera]` section; call `open()` (or use it as a context)."""
    if isinstance(camera_config, ReplayCameraConfig):
        from edge.sources.replay import ReplaySource  # noqa: PLC0415

        return ReplaySource(camera_config)
    if isinstance(camera_config, GenICamCameraConfig):
        from edge.sources.genicam import GenICamSource  # noqa: PLC0415 (needs harvesters)

        return GenICamSource(camera_config)
    raise ConfigError(f"camera.type: unsupported camera config {type(camera_config).__name__}")
