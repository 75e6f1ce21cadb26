"""Atomic file writes under the archive root, and what a failed write says about the disk."""

from __future__ import annotations

import errno
import os
import re
from datetime import UTC, datetime
from pathlib import Path

TEMP_PREFIX = ".tmp-"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

# disk states shown in stats; "ok" until a write fails
OK, FULL, READ_ONLY, NOT_WRITABLE, ERROR = "ok", "full", "read_only", "not_writable", "error"
_STATE_OF_ERRNO = {
    errno.ENOSPC: FULL, errno.EDQUOT: FULL, errno.EROFS: READ_ONLY,
    errno.EACCES: NOT_WRITABLE, errno.EPERM: NOT_WRITABLE,
}


def disk_state(exc: OSError) -> str:
    return _STATE_OF_ERRNO.get(exc.errno, ERROR)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temp file beside `path`, fsync it, rename it over `path`.

    A reader (or a crash) sees either no file or the whole file, never a partial image. On any
    error the temp file is removed and the OSError propagates.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}.{os.getpid()}")
    try:
        with open(temp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            temp.unlink(missing_ok=True)
        except OSError:
            pass
        raise


def safe_name(text: str) -> str:
    """A file-name-safe form of a coil id: runs of other characters become '_'."""
    cleaned = _UNSAFE.sub("_", text).strip("._")
    return cleaned[:100] or "_"


def coil_folder(coil_id: str | None, started: float) -> str:
    """Folder of one coil's files: `<coil id>_<UTC start>`, or `no-coil_<UTC start>`.

    The start time keeps a coil id that comes back (a coil run twice, or no tracking with the
    daemon restarted) from overwriting the files of its earlier pass.
    """
    stamp = datetime.fromtimestamp(started, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{safe_name(coil_id) if coil_id else 'no-coil'}_{stamp}"


def defect_image_name(defect_id: int) -> str:
    return f"defect-{defect_id:06d}.jpg"


def frame_image_name(frame_id: str) -> str:
    return f"frame-{safe_name(Path(frame_id).stem)}.jpg"


def frame_record_name(frame_id: str) -> str:
    """The JSON beside a whole frame: the daemon's decisions on it (see edge.archive.export)."""
    return f"frame-{safe_name(Path(frame_id).stem)}.json"


def move_folder(root: Path, old: str, new: str) -> int:
    """Move the files of folder `old` into folder `new` (both under `root`) and leave `old` as a
    relative link to `new`, so paths that name `old` (events already sent) still resolve and
    files still written there land in `new`. Returns the files moved; OSError propagates."""
    source, target = root / old, root / new
    if source.is_symlink():
        return 0
    target.mkdir(parents=True, exist_ok=True)
    moved = 0
    if source.is_dir():
        for entry in source.iterdir():
            os.replace(entry, target / entry.name)
            moved += 1
        source.rmdir()
    os.symlink(new, source, target_is_directory=True)
    return moved
