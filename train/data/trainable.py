"""What a folder needs to be trained on, beyond being readable: the one check of `fit` and
`check-data`, so `check-data` never says "ok" for a folder that `fit` refuses."""

from __future__ import annotations

from train.data.crops import DEFAULT_TILE
from train.data.problems import Problems


def check_trainable(folder, problems: Problems, tile: int = DEFAULT_TILE) -> None:
    """Add a problem for each reason `folder` cannot be trained on (raises when strict)."""
    if folder.class_map.num_classes == 0:
        problems.add(f"class map {folder.class_map.to_text()} drops every class: nothing to learn")
    if folder.width < tile or folder.height < tile:
        problems.add(
            f"{folder.root}: images are {folder.width}x{folder.height}, smaller than one "
            f"{tile}x{tile} tile"
        )


def dropped_lines(summary: dict) -> list[str]:
    """One line per Severstal class the class map drops: its images and mask pixels."""
    return [
        f"class map {summary['class_map']} drops Severstal class {d['severstal_id']}: "
        f"{d['images']} images, {d['mask_pixels']:,} mask pixels"
        for d in summary.get("dropped", [])
    ]
