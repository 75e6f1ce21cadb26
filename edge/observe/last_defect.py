"""The most recent defect the pipeline reported, taken from the events on their way out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime


class LastDefect:
    def __init__(self) -> None:
        self.values: dict = {}  # replaced whole on each event: readers need no lock
        self.timestamp_ms: int | None = None

    def tap(self, submit: Callable[[str, dict], bool]) -> Callable[[str, dict], bool]:
        """`submit(kind, payload)` that also remembers a defect event's highest-scoring defect."""
        def submit_and_remember(kind: str, payload: dict) -> bool:
            if kind == "defects":
                self.remember(payload)
            return submit(kind, payload)
        return submit_and_remember

    def remember(self, event: dict) -> None:
        defects = event.get("defects") or []
        if not defects:
            return
        top = max(defects, key=lambda d: d.get("score", 0.0))
        self.values = {
            "class": top.get("class_name"),
            "score": top.get("score"),
            "md_m": _start(top.get("md_m")),  # events v2: [start, end]; v1 has none
            "cd_mm": _start(top.get("cd_mm")),
        }
        self.timestamp_ms = _ms(event.get("ts"))


def _start(extent) -> float | None:
    return extent[0] if isinstance(extent, list) and extent else None


def _ms(iso: str | None) -> int | None:
    if not iso:
        return None
    try:
        return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None
