"""The `[archive]` section: where defect images and coil maps go, and how much of them is kept.

Plugged into `edge.config.EdgeConfig` as `archive: ArchiveConfig = Field(default_factory=...)`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from edge.config import ConfigPath, Section

# systemd's StateDirectory=steel-inspect of systemd/steel-inspect-edge.service
DEFAULT_ARCHIVE_PATH = Path("/var/lib/steel-inspect/archive")


class ArchiveConfig(Section):
    enabled: bool = Field(True, description="write defect images and coil maps at all")
    path: ConfigPath = Field(
        DEFAULT_ARCHIVE_PATH,
        description="archive root (inside the service's StateDirectory by default); events "
        "and coil reports name files relative to it",
    )
    max_gb: float = Field(
        20.0, gt=0, le=100_000,
        description="gigabytes of images kept at most; the oldest files are deleted beyond",
    )
    max_days: float = Field(
        90.0, gt=0, le=36_500, description="days an image is kept at most (by file age)"
    )
    margin_px: int = Field(
        32, ge=0, le=4096, description="pixels added around each defect box in its crop"
    )
    whole_frame: bool = Field(
        False, description="also keep the whole frame of each defect (one file per frame)"
    )
    jpeg_quality: int = Field(90, ge=10, le=100, description="JPEG quality of the images")
    queue: int = Field(
        256, ge=1, le=100_000,
        description="images waiting for the disk at most; beyond, images are dropped (counted), "
        "never the events",
    )
    retention_interval_s: float = Field(
        60.0, gt=0, le=86_400, description="seconds between two retention sweeps"
    )
    map_width_px: int = Field(
        1600, ge=400, le=8000, description="width of the coil defect map PNG (the MD axis)"
    )
