"""Exponential retry delays, shared by the camera's reconnects and the publisher's retries."""

from __future__ import annotations


class Backoff:
    """Exponential reconnect delays: initial, 2x initial, ... capped at `maximum`."""

    def __init__(self, initial: float, maximum: float):
        self.initial = max(float(initial), 0.0)
        self.maximum = max(float(maximum), self.initial)
        self._next = self.initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(max(self._next * 2, 1e-3), self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial
