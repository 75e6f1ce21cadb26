"""A warning that may recur at frame rate, logged at most once per interval with a repeat count."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

_INTERVAL_S = 10.0


class RateLimitedLog:
    """Logs a recurring problem at most once per interval per key, with the repeat count."""

    def __init__(self, interval: float = _INTERVAL_S, logger: logging.Logger | None = None) -> None:
        self._log = logger or log
        self._interval = interval
        self._last: dict[str, tuple[float, int]] = {}

    def warning(self, key: str, message: str, *args) -> None:
        now = time.monotonic()
        last, repeats = self._last.get(key, (-self._interval, 0))
        if now - last >= self._interval:
            suffix = f" (and {repeats} more like it)" if repeats else ""
            self._log.warning(message + suffix, *args)
            self._last[key] = (now, 0)
        else:
            self._last[key] = (last, repeats + 1)
