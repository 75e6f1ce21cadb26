"""The birth/death sequence number (bdSeq), kept in the state directory across restarts.

Each MQTT CONNECT registers an NDEATH will carrying a bdSeq; the NBIRTH of that session carries
the same number, so a host can tell a late NDEATH of an old session from the current one. The
number is advanced and saved before each connect, so a restart after kill -9 never reuses it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

SEQ_MODULO = 256


class BdSeqStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def take(self) -> int:
        """The bdSeq for the next connection; the one after it is saved for the next call."""
        value = self._read()
        self._write((value + 1) % SEQ_MODULO)
        return value

    def _read(self) -> int:
        try:
            value = int(self.path.read_text().strip())
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable bdSeq (%s); starting at 0", self.path, exc)
            return 0
        return value % SEQ_MODULO

    def _write(self, value: int) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(f"{value}\n")
            os.replace(temporary, self.path)
        except OSError as exc:  # the session still works; only a restart may repeat a bdSeq
            log.warning("%s: cannot save bdSeq: %s", self.path, exc)
