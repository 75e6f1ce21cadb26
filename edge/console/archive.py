"""Reading the image archive: only files inside its root, only image and frame-metadata types.

Paths come from events (`defects[].image`), coil reports (`map`) and URLs; all are relative to
the root. Anything absolute, with `..`, a NUL, a symlink out of the root or another suffix is
refused (None), so a crafted URL cannot read /etc/steel-inspect or the MQTT password.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

SERVED_SUFFIXES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
                   ".json": "application/json"}


class Archive:
    def __init__(self, root: Path | None) -> None:
        self.root = root.resolve() if root is not None else None

    def resolve(self, relative: str) -> Path | None:
        """The file under the root that `relative` names, or None when it is refused or absent."""
        if self.root is None or not relative or "\0" in relative or "\\" in relative:
            return None
        pure = PurePosixPath(relative)
        if pure.is_absolute() or ".." in pure.parts or pure.suffix.lower() not in SERVED_SUFFIXES:
            return None
        path = (self.root / pure).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            return None
        return path

    def read(self, relative: str) -> bytes | None:
        """The bytes of the file `relative` names, read in one go, or None when refused or gone
        (a late-named coil's folder can move, or retention delete a file, after `resolve`)."""
        path = self.resolve(relative)
        try:
            return path.read_bytes() if path is not None else None
        except OSError:
            return None

    def latest_jpeg(self, camera: str) -> bytes | None:
        """The daemon's latest frame of `camera` (latest/{camera}.jpg), read in one go: the
        daemon replaces it every few hundred ms, and a response that took its size first and
        its bytes later would send a cut or overlong body."""
        path = self.resolve(f"latest/{camera}.jpg")
        try:
            return path.read_bytes() if path is not None else None
        except OSError:
            return None

    def latest_meta(self, camera: str) -> dict | None:
        """The latest frame's tile metadata (latest/{camera}.json)."""
        path = self.resolve(f"latest/{camera}.json")
        try:
            return json.loads(path.read_text()) if path is not None else None
        except (OSError, ValueError):
            return None  # damaged, or gone between resolve and read: the next poll gets it


def media_type(path: Path) -> str:
    return SERVED_SUFFIXES[path.suffix.lower()]
