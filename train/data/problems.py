"""Collects data problems: raise on the first one (training) or list them all (`check-data`)."""

from __future__ import annotations

from edge.errors import DataError


class Problems:
    """`add(message)` raises DataError when strict, else remembers the message."""

    def __init__(self, strict: bool = True) -> None:
        self.strict = strict
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        if self.strict:
            raise DataError(message)
        self.messages.append(message)

    def __bool__(self) -> bool:
        return bool(self.messages)

    def __len__(self) -> int:
        return len(self.messages)


def name_some(names, limit: int = 10) -> str:
    """'a, b, c' or 'a, b, ... (and 7 more)' for messages that list files."""
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... (and {len(names) - limit} more)"
