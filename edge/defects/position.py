"""Where a frame lies on the strip: which coil, how far from its head (grabber thread).

`StripLocator.place(frame)` applies the tracking changes that arrived before the frame was
acquired, then gives the frame its coil and MD position. Every acquired frame is placed, also one
dropped later for lack of time, so MD keeps counting the strip that passed.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.config import GeometryConfig
from edge.tracking.tracker import Tracker


@dataclass(frozen=True)
class Placement:
    coil_key: int  # local number of the coil segment, +1 at every coil change (persisted)
    coil_id: str | None
    frame_index: int  # 0 for the first frame of the coil
    md_m: float  # MD of the frame's first row, metres from the head of the coil
    tracking: str  # tracker state when the frame was placed
    started: float  # acquisition time of the coil's first frame (UTC seconds)
    l2_length_m: float | None = None


@dataclass
class OpenSegment:
    """The coil being acquired, as the locator keeps it (and restores it after a restart)."""

    coil_key: int
    coil_id: str | None
    started: float
    frames_in: int = 0
    md_next_m: float = 0.0
    last_ts: float | None = None
    l2_length_m: float | None = None

    def to_dict(self) -> dict:
        return dict(vars(self))


class StripLocator:
    def __init__(self, geometry: GeometryConfig, tracker: Tracker,
                 resumed: OpenSegment | None = None) -> None:
        self.geometry = geometry
        self.tracker = tracker
        self.segment = resumed
        self.frames_in: dict[int, int] = {}  # coil_key -> frames placed (read by the ledger)
        if resumed is not None:
            self.frames_in[resumed.coil_key] = resumed.frames_in
        self._next_key = (resumed.coil_key if resumed else 0) + 1

    def place(self, timestamp: float, height_px: int) -> Placement:
        segment = self._segment_for(timestamp)
        md = self._advance(segment, timestamp, height_px)
        placement = Placement(
            coil_key=segment.coil_key, coil_id=segment.coil_id, frame_index=segment.frames_in,
            md_m=md, tracking=self.tracker.state, started=segment.started,
            l2_length_m=segment.l2_length_m,
        )
        segment.frames_in += 1
        self.frames_in[segment.coil_key] = segment.frames_in
        return placement

    def _segment_for(self, timestamp: float) -> OpenSegment:
        for change in self.tracker.changes_until(timestamp):
            segment = self.segment
            # the first message names the coil the daemon started on (frames may come first)
            if segment is not None and segment.coil_id in (None, change.coil_id):
                segment.coil_id = change.coil_id
                segment.l2_length_m = change.length_m or segment.l2_length_m
                continue
            self.segment = self._new_segment(change.coil_id, timestamp, change.length_m)
        if self.segment is None:
            self.segment = self._new_segment(self.tracker.last_coil_id, timestamp, None)
        return self.segment

    def _new_segment(self, coil_id: str | None, timestamp: float,
                     length_m: float | None) -> OpenSegment:
        segment = OpenSegment(self._next_key, coil_id, timestamp, l2_length_m=length_m)
        self._next_key += 1
        return segment

    def _advance(self, segment: OpenSegment, timestamp: float, height_px: int) -> float:
        geometry = self.geometry
        if geometry.md_source == "speed":
            speed = self.tracker.speed_m_s or geometry.speed_m_s or 0.0
            if segment.last_ts is not None:
                segment.md_next_m += speed * max(timestamp - segment.last_ts, 0.0)
            md = segment.md_next_m
        else:
            md = segment.md_next_m
            segment.md_next_m += height_px * geometry.mm_per_px_md / 1000.0
        segment.last_ts = timestamp
        return md
