"""The outbox database file held by identity: an flock on the file itself, and its inode.

The side lock file (`outbox.sqlite.lock`) protects nothing once someone deletes it, and the path
alone does not say whether the file behind it is still the one the daemon opened. This lock is on
the database's own inode, so a second daemon cannot open the same database while this one runs
(whatever happens to the lock file), and `replaced()` notices when the path was deleted or now
names another file (restored from a backup, re-created by hand or by another process).
`truncated()` notices the held file getting shorter: SQLite never shrinks it here (no
auto_vacuum, no VACUUM), so a shorter file was cut by someone else and its lost pages show up
only when they are next read, or at the next start.

flock and SQLite's POSIX record locks are independent on Linux, and the descriptor stays open
until after SQLite's connection is closed (closing any descriptor of a file drops the process's
POSIX locks on it, which would break SQLite's own locking).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from edge.errors import ConfigError


class DatabaseFile:
    """An open, exclusively flocked database file and the (device, inode) it had when opened."""

    def __init__(self, path: Path, descriptor: int) -> None:
        self.path = path
        self._fd = descriptor
        info = os.fstat(descriptor)
        self.identity = (info.st_dev, info.st_ino)
        self._largest = info.st_size  # the file never shrinks by SQLite's doing

    @classmethod
    def lock(cls, path: Path) -> DatabaseFile:
        """Open (creating an empty file, a valid empty database) and flock; ConfigError if held."""
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigError(f"outbox.path: {path}: {exc.strerror}") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(descriptor)
            raise ConfigError(f"outbox.path: {path} is in use by another edge process") from None
        return cls(path, descriptor)

    def replaced(self) -> str | None:
        """Why the path no longer names the file this process holds (None if it still does)."""
        if os.fstat(self._fd).st_nlink == 0:
            return "was deleted"
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return "was deleted"
        except OSError as exc:
            return f"cannot be checked ({exc.strerror})"
        if (info.st_dev, info.st_ino) != self.identity:
            return "was replaced by another file"
        return None

    def truncated(self) -> str | None:
        """Why the held file is damaged (it got shorter than it was), None if it did not."""
        size = os.fstat(self._fd).st_size
        if size < self._largest:
            return f"was truncated from {self._largest} to {size} bytes"
        self._largest = size
        return None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # also releases the flock
            self._fd = -1
