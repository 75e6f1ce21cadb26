"""systemd notification protocol (sd_notify) over the unix datagram socket in $NOTIFY_SOCKET.

Written here rather than pulled in as a dependency: it is one `sendto`. A name starting with '@'
is a socket in the abstract namespace. Without $NOTIFY_SOCKET (not under systemd) every call is a
no-op. The watchdog is fed by `Watchdog.kick()`, which the inference loop calls on every turn, so
a stuck inference stops the pings and systemd restarts the daemon.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

log = logging.getLogger(__name__)


class SdNotifier:
    def __init__(self, address: str | None = None) -> None:
        address = os.environ.get("NOTIFY_SOCKET") if address is None else address
        self._address = _socket_address(address) if address else None
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send `KEY=VALUE` lines in one datagram; False if not under systemd or sending failed."""
        if self._address is None:
            return False
        message = "\n".join(assignments).encode()
        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.sendto(message, self._address)
                return True
            except OSError as exc:
                if not self._warned:
                    log.warning("sd_notify to %s failed: %s", self._address, exc)
                    self._warned = True
                return False

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={_one_line(text)}")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


class Watchdog:
    """Sends WATCHDOG=1 at most every half watchdog period, but only when kicked."""

    def __init__(self, notifier: SdNotifier, interval: float | None = None) -> None:
        self._notifier = notifier
        self._interval = watchdog_interval() if interval is None else interval
        self._last = 0.0

    @property
    def enabled(self) -> bool:
        return self._notifier.enabled and self._interval is not None

    def kick(self) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._notifier.watchdog()


def watchdog_interval() -> float | None:
    """Half of $WATCHDOG_USEC in seconds, if the watchdog is meant for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        period = int(usec) / 1e6
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not an integer", usec)
        return None
    return period / 2 if period > 0 else None


def _socket_address(name: str) -> str | bytes:
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


def _one_line(text: str) -> str:
    return " ".join(text.split())
