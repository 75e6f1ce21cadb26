"""The most recent defect the pipeline reported, taken from the events on their way out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime


class LastDefect:
    def __init__(self) -> None:
        self.values: dict = {}  # replaced whole on each event: readers need no lock
        self.timestamp_ms: int | None = None

    def tap(self, submit: Callable[[dict], bool]) -> Callable[[dict], bool]:
        """`submit` that also remembers the event's highest-scoring defect."""
        def submit_and_remember(event: dict) -> bool:
            self.remember(event)
            return submit(event)
        return submit_and_remember

    def remember(self, event: dict) -> None:
        defects = event.get("defects") or []
        if not defects:
            return
        top = max(defects, key=lambda d: d.get("score", 0.0))
        self.values = {
            "class": top.get("class_name"),
            "score": top.get("score"),
            "md_m": top.get("md_m"),  # present once events carry positions (events v2)
            "cd_mm": top.get("cd_mm"),
        }
        self.timestamp_ms = _ms(event.get("ts"))


def _ms(iso: str | None) -> int | None:
    if not iso:
        return None
    try:
        return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None
