"""The coil being inspected, as the inference thread sees it, and its report when it ends.

`CoilLedger.frame(placement)` is called for each processed (or failed) frame in order: a frame of
a new coil ends the open one first. The ledger counts frames, distinct defects and area per class;
`snapshot()` is what the outbox keeps, so a coil that spans a crash gets one report. A coil ends
at a tracking change, when the daemon stops cleanly, or, with no tracking, at a restart.
Frames acquired while inspection was paused (the `pause` command) are `frames.paused`; frames
acquired but never processed otherwise (dropped from the frame queue, or lost in a crash) are what
`frames.dropped` counts: `in - processed - failed - paused`.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field

from edge.defects.position import OpenSegment, Placement
from edge.observe.stats import utc_iso

log = logging.getLogger(__name__)

COIL_REPORT_SCHEMA = "steel-inspect/coil-report/v1"


@dataclass
class CoilTotals:
    coil_key: int
    coil_id: str | None
    started: float
    processed: int = 0
    failed: int = 0
    last_ts: float | None = None
    md_end_m: float = 0.0
    next_defect_id: int = 1
    defect_ids: dict[str, list[int]] = field(default_factory=dict)
    area_mm2: dict[str, float] = field(default_factory=dict)
    restarts: int = 0
    tracking: Counter = field(default_factory=Counter)
    l2_length_m: float | None = None

    def add_defects(self, defects: list[dict]) -> None:
        for defect in defects:
            name = defect["class_name"]
            ids = self.defect_ids.setdefault(name, [])
            if defect["defect_id"] not in ids:
                ids.append(defect["defect_id"])
            self.area_mm2[name] = self.area_mm2.get(name, 0.0) + defect["area_mm2"]


class CoilLedger:
    def __init__(self, site, geometry, class_names: list[str], model: dict,
                 frames_in: dict[int, int], frames_paused: dict[int, int] | None = None) -> None:
        self.site = site
        self.geometry = geometry
        self.class_names = list(class_names)
        self.model = dict(model)
        self._frames_in = frames_in  # the locator's counts, written by the grabber
        self._frames_paused = frames_paused if frames_paused is not None else {}  # ditto
        self.open: CoilTotals | None = None

    def restore(self, state: dict) -> None:
        totals = CoilTotals(**{k: v for k, v in state["totals"].items() if k != "tracking"})
        totals.tracking = Counter(state["totals"].get("tracking", {}))
        totals.restarts += 1
        self.open = totals

    def processed(self, timestamp: float, defects: list[dict] | None) -> None:
        """The open coil's frame was processed (defects: what it found) or failed (None)."""
        if defects is None:
            self.open.failed += 1
        else:
            self.open.processed += 1
            self.open.add_defects(defects)
        self.open.last_ts = timestamp

    def frame(self, placement: Placement, frame_end_md_m: float) -> None:
        """Account for one frame of `placement` (the caller closes a coil it ended first)."""
        if self.open is None:
            self.open = CoilTotals(placement.coil_key, placement.coil_id, placement.started,
                                   l2_length_m=placement.l2_length_m)
        self.open.coil_id = placement.coil_id  # named late when tracking came after frames
        self.open.md_end_m = max(self.open.md_end_m, frame_end_md_m)
        self.open.tracking[placement.tracking.split(":")[0]] += 1
        self.open.l2_length_m = placement.l2_length_m or self.open.l2_length_m

    def close(self, reason: str, ended: float | None = None) -> dict:
        totals, self.open = self.open, None
        paused = self._frames_paused.pop(totals.coil_key, 0)
        frames_in = max(self._frames_in.pop(totals.coil_key, 0),
                        totals.processed + totals.failed + paused)
        report = self._report(totals, frames_in, reason, ended, paused)
        log.info("coil %s ended (%s): %.2f m, %d/%d frames, defects %s", totals.coil_id, reason,
                 report["length_m"], totals.processed, frames_in, report["defects"])
        return report

    def snapshot(self, segment: OpenSegment | None) -> dict | None:
        """The open coil's state for the outbox; None when no coil is open."""
        if self.open is None:
            return None
        totals = dict(vars(self.open))
        totals["tracking"] = dict(self.open.tracking)
        totals["defect_ids"] = {k: list(v) for k, v in self.open.defect_ids.items()}
        totals["area_mm2"] = dict(self.open.area_mm2)
        same = segment is not None and segment.coil_key == self.open.coil_key
        return {"totals": totals, "segment": segment.to_dict() if same else None}

    def _report(self, totals: CoilTotals, frames_in: int, reason: str,
                ended: float | None, paused: int = 0) -> dict:
        length = round(totals.md_end_m, 3)
        defects = {name: len(totals.defect_ids.get(name, [])) for name in self.class_names}
        areas = {name: round(totals.area_mm2.get(name, 0.0), 3) for name in self.class_names}
        return {
            "schema": COIL_REPORT_SCHEMA,
            "stream": None,  # set by the outbox with seq
            "seq": None,
            "report_id": uuid.uuid4().hex,
            "line": self.site.line,
            "camera": self.site.camera,
            "side": self.geometry.side,
            "coil_id": totals.coil_id,
            "started": utc_iso(totals.started),
            "ended": utc_iso(totals.last_ts if ended is None and totals.last_ts else
                             ended or totals.started),
            "end_reason": reason,
            "length_m": length,
            "l2_length_m": totals.l2_length_m,
            "frames": {
                "in": frames_in,
                "processed": totals.processed,
                "failed": totals.failed,
                "paused": paused,
                "dropped": frames_in - totals.processed - totals.failed - paused,
            },
            "coverage": round(totals.processed / frames_in, 6) if frames_in else 0.0,
            "defects": defects,
            "area_mm2": areas,
            "defects_per_100m": {
                name: round(count * 100.0 / length, 3) if length > 0 else None
                for name, count in defects.items()
            },
            "restarts": totals.restarts,
            "tracking": dict(totals.tracking),
            "model": dict(self.model),
        }
