"""Keep the archive within `max_gb` and `max_days`: the oldest files go first, counted."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from edge.archive.files import TEMP_PREFIX

log = logging.getLogger(__name__)

ARCHIVED_SUFFIXES = (".jpg", ".png", ".json")  # .json: the record beside a whole frame
STALE_TEMP_S = 3600.0  # temp files older than this were left by a crash


@dataclass
class SweepResult:
    deleted_by_age: int = 0
    deleted_by_size: int = 0
    kept_files: int = 0
    kept_bytes: int = 0


@dataclass(frozen=True)
class _Entry:
    path: Path
    size: int
    mtime: float


def _scan(root: Path, now: float) -> list[_Entry]:
    entries = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            try:
                stat = path.stat()
            except OSError:
                continue  # deleted meanwhile
            if name.startswith(TEMP_PREFIX):
                if now - stat.st_mtime > STALE_TEMP_S:
                    _remove(path)
                continue
            if path.suffix.lower() in ARCHIVED_SUFFIXES:
                entries.append(_Entry(path, stat.st_size, stat.st_mtime))
    return entries


def _remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _remove_empty_folders(root: Path) -> None:
    """Folders left empty, then links to folders that are gone (a late-named coil's old name:
    the writer makes them only in the root, so only the root's entries are looked at)."""
    for folder, _, _ in os.walk(root, topdown=False):
        if Path(folder) != root:
            try:
                os.rmdir(folder)  # only an empty folder goes
            except OSError:
                pass  # not empty, or a file arrived meanwhile
    with os.scandir(root) as entries:
        links = [Path(entry.path) for entry in entries if entry.is_symlink()]
    for link in links:
        if not link.exists():
            _remove(link)


def sweep(root: Path, max_bytes: int, max_age_s: float, now: float | None = None) -> SweepResult:
    """Delete files older than `max_age_s`, then the oldest until at most `max_bytes` remain."""
    now = time.time() if now is None else now
    result = SweepResult()
    if not root.is_dir():
        return result
    entries = sorted(_scan(root, now), key=lambda e: e.mtime)
    kept = []
    for entry in entries:
        if now - entry.mtime > max_age_s:
            result.deleted_by_age += _remove(entry.path)
        else:
            kept.append(entry)
    total = sum(e.size for e in kept)
    first_kept = 0
    while total > max_bytes and first_kept < len(kept):
        total -= kept[first_kept].size
        result.deleted_by_size += _remove(kept[first_kept].path)
        first_kept += 1
    result.kept_files, result.kept_bytes = len(kept) - first_kept, total
    if result.deleted_by_age or result.deleted_by_size:
        _remove_empty_folders(root)
        log.warning(
            "archive %s: deleted %d file(s) older than %.1f days and %d oldest file(s) over "
            "%.2f GB; %d file(s), %.2f GB kept", root, result.deleted_by_age, max_age_s / 86400,
            result.deleted_by_size, max_bytes / 1e9, result.kept_files, total / 1e9,
        )
    return result
