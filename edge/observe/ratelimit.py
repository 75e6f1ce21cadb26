"""One warning per interval for a recurring problem, with the count of the ones held back."""

from __future__ import annotations

import logging
import time

DEFAULT_INTERVAL_S = 10.0


class RateLimitedLog:
    """Logs a recurring problem at most once per interval per key, with the repeat count."""

    def __init__(self, logger: logging.Logger, interval: float = DEFAULT_INTERVAL_S) -> None:
        self._log = logger
        self._interval = interval
        self._last: dict[str, tuple[float, int]] = {}

    def warning(self, key: str, message: str, *args) -> None:
        self._emit(logging.WARNING, key, message, args)

    def error(self, key: str, message: str, *args, exc_info: bool = False) -> None:
        self._emit(logging.ERROR, key, message, args, exc_info)

    def _emit(self, level: int, key: str, message: str, args: tuple,
              exc_info: bool = False) -> None:
        now = time.monotonic()
        last, repeats = self._last.get(key, (-self._interval, 0))
        if now - last >= self._interval:
            suffix = f" (and {repeats} more like it)" if repeats else ""
            self._log.log(level, message + suffix, *args, exc_info=exc_info)
            self._last[key] = (now, 0)
        else:
            self._last[key] = (last, repeats + 1)
