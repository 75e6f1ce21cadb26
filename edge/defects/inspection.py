"""What the inference thread makes of each frame: payloads for the publisher.

`CoilInspection` (events v2): defect objects with ids, strip positions and the coil; coil reports
when coils end; the open coil's state for the outbox. `TileInspection` (events v1): one entry per
tile and class, as before. Both return `(kind, payload)` pairs, kind "defects" or "coils", and a
`state` (the open coil's, or None) for the publisher to keep in the outbox.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

import numpy as np

from edge.config import EdgeConfig
from edge.defects.coil import CoilLedger, CoilTotals
from edge.defects.events import DEFECT_EVENT_V2_SCHEMA, DefectRule, EventBuilder
from edge.defects.localise import localise
from edge.defects.objects import ClassCuts, DefectBuilder
from edge.defects.position import OpenSegment, StripLocator
from edge.observe.stats import utc_iso
from edge.sources.base import Frame

if TYPE_CHECKING:  # the daemon hands it in; the archive is downstream of the defects
    from edge.archive.coils import CoilArchive
    from edge.control.pause import InspectionPause

_STATE_EVERY_S = 1.0


class TileInspection:
    """Events v1: unchanged payload, no coils."""

    def __init__(self, rule: DefectRule, builder: EventBuilder) -> None:
        self.rule = rule
        self.builder = builder

    def frame(self, frame: Frame, probabilities: np.ndarray, boxes: np.ndarray, cam=None):
        defects = self.rule.defects(probabilities, boxes)
        return ([("defects", self.builder.build(frame, defects))] if defects else []), defects

    def failed(self, frame: Frame) -> list:
        return []

    def use_model(self, rule: DefectRule, model: dict) -> None:
        """A hot-swapped model: its thresholds and name from the next frame on."""
        self.rule = rule
        self.builder = EventBuilder(self.builder.site, model)

    def idle(self) -> list:
        return []

    def stop(self) -> list:
        return []

    def state(self, force: bool = False):
        return False  # no coil: nothing to save (None would clear a saved coil at every frame)


class CoilInspection:
    def __init__(self, config: EdgeConfig, rule: DefectRule, model: dict,
                 locator: StripLocator, archive: CoilArchive | None = None,
                 paused_frames: dict[int, int] | None = None,
                 paused_coils: dict | None = None, pause: InspectionPause | None = None) -> None:
        self.config = config
        self.archive = archive
        self.model = dict(model)
        self.locator = locator
        self.classes = ClassCuts(rule.class_ids, rule.class_names, rule.cuts,
                                 rule.applied_thresholds)
        self.ledger = CoilLedger(config.site, config.geometry, rule.class_names, model,
                                 locator.frames_in, paused_frames)
        self._builder: DefectBuilder | None = None
        self._builder_key: int | None = None
        self._next_state = 0.0
        self._dirty = False
        # coil_key -> edge.control.pause.PausedCoil: coils met while inspection was paused
        self.paused_coils = paused_coils if paused_coils is not None else {}
        self.pause = pause  # told of each coil reported (no second report of a coil)

    def use_model(self, rule: DefectRule, model: dict) -> None:
        """A hot-swapped model: its thresholds and name from the next frame on (the open coil
        goes on; its report names the model in use when it ends)."""
        self.model = dict(model)
        self.ledger.model = dict(model)
        self.classes = ClassCuts(rule.class_ids, rule.class_names, rule.cuts,
                                 rule.applied_thresholds)
        if self._builder is not None:
            self._builder.classes = self.classes

    def restore(self, state: dict) -> list:
        """Resume the coil a crash interrupted; without tracking it ends here (reported)."""
        self.ledger.restore(state)
        self._builder_key = self.ledger.open.coil_key
        self._builder = DefectBuilder(self.classes, self.config.geometry, 0,
                                      next_defect_id=self.ledger.open.next_defect_id)
        if self.config.tracking.source == "none":
            return [("coils", self._close("restart"))]
        return []

    def frame(self, frame: Frame, probabilities: np.ndarray, boxes: np.ndarray,
              cam: np.ndarray | None = None):
        placement = frame.meta["placement"]
        out = self._begin(frame, placement)
        builder = self._builder
        builder.frame_width = frame.image.shape[1]
        refine = None if cam is None else cam_refiner(self.classes.cuts, boxes, cam)
        defects = builder.build(probabilities, boxes, placement, refine)
        self.ledger.open.next_defect_id = builder.next_defect_id
        self.ledger.processed(frame.timestamp, defects)
        if defects:
            whole = (None if self.archive is None else
                     self.archive.defect_images(frame, placement.coil_id, placement.started,
                                                defects))
            event = self._event(frame, placement, defects)
            if whole is not None:
                event["frame_image"] = whole
            out.append(("defects", event))
            self._next_state = 0.0  # saved with the event: its defect ids are taken for good
        self._dirty = True
        return out, defects

    def failed(self, frame: Frame) -> list:
        placement = frame.meta["placement"]
        out = self._begin(frame, placement)
        self.ledger.processed(frame.timestamp, None)
        self._dirty = True
        return out

    def idle(self) -> list:
        """No frame is waiting: a coil the tracker has moved past ends now."""
        tracker, open_coil = self.locator.tracker, self.ledger.open
        if open_coil is None or tracker.last_coil_id in (None, open_coil.coil_id):
            return self._paused_coils_ended("tracking") if self.paused_coils else []
        self._dirty = True
        return [("coils", self._close("tracking", ended=time.time()))]

    def stop(self) -> list:
        out = []
        if self.ledger.open is not None:
            self._dirty = True
            out.append(("coils", self._close("stop")))
        return out + self._paused_coils_ended("stop")

    def _paused_coils_ended(self, reason: str) -> list:
        """Reports of coils acquired entirely while inspection was paused (never opened here):
        processed 0, coverage 0, sent once the strip has moved on to another coil (or at stop)."""
        if self.ledger.open is not None:  # it is reported first
            return []
        segment = self.locator.segment
        current = None if reason == "stop" or segment is None else segment.coil_key
        reports = []
        for key in sorted(k for k in list(self.paused_coils) if k != current):
            seen = self.paused_coils[key]
            frame_end = (seen.last.md_m
                         + seen.height_px * self.config.geometry.mm_per_px_md / 1000.0)
            self.ledger.open = CoilTotals(key, seen.last.coil_id, seen.first.started,
                                          last_ts=seen.last_ts, md_end_m=frame_end,
                                          l2_length_m=seen.last.l2_length_m)
            reports.append(("coils", self._close(reason)))
            self._dirty = True
        return reports

    def state(self, force: bool = False):
        """The open coil's state when it is due for saving (with every event, else at most once a
        second), or False when nothing is due."""
        now = time.monotonic()
        if not self._dirty or (not force and now < self._next_state):
            return False
        self._next_state, self._dirty = now + _STATE_EVERY_S, False
        return self.ledger.snapshot(self.locator.segment)

    def _close(self, reason: str, ended: float | None = None) -> dict:
        """End the open coil: its report, with the map the archive draws of it."""
        totals = self.ledger.open
        if self.pause is not None:  # first: a paused frame of it acquired later is left out
            self.pause.coil_reported(totals.coil_key)
        self.paused_coils.pop(totals.coil_key, None)  # its paused frames are in this report
        report = self.ledger.close(reason, ended)
        report["map"] = (None if self.archive is None else
                         self.archive.coil_map(totals.coil_id, totals.started, report))
        return report

    def _begin(self, frame: Frame, placement) -> list:
        height = frame.image.shape[0]
        frame_end = placement.md_m + height * self.config.geometry.mm_per_px_md / 1000.0
        reports = []
        if self.ledger.open is not None and self.ledger.open.coil_key != placement.coil_key:
            reports.append(("coils", self._close("tracking")))
        self.ledger.frame(placement, frame_end)
        if self.archive is not None:  # a coil named only now: its images follow the name
            self.archive.follow(placement.coil_id, placement.started)
        if self._builder_key != placement.coil_key:
            self._builder = DefectBuilder(self.classes, self.config.geometry, frame.image.shape[1])
            self._builder_key = placement.coil_key
        return reports

    def _event(self, frame: Frame, placement, defects: list[dict]) -> dict:
        site = self.config.site
        return {
            "schema": DEFECT_EVENT_V2_SCHEMA,
            "stream": None,  # stream and seq are set by the outbox
            "seq": None,
            "event_id": uuid.uuid4().hex,
            "ts": utc_iso(frame.timestamp),
            "line": site.line,
            "camera": site.camera,
            "side": self.config.geometry.side,
            "frame_id": frame.frame_id,
            "coil_id": placement.coil_id,
            "md_m": round(placement.md_m, 4),
            "tracking": placement.tracking,
            "model": dict(self.model),
            "defects": defects,
        }


def cam_refiner(cuts, boxes: np.ndarray, cam: np.ndarray):
    """DefectBuilder's `refine(class, tiles)`: the (box_px, area_px) that the frame's class
    activation maps find for a defect over those tiles (None where they find nothing)."""

    def refine(c: int, tiles: list[int]):
        found = localise(boxes[tiles], cam[tiles, c], float(cuts[c]))
        return None if found is None else (found.box_px, found.area_px)
    return refine


def resume_segment(state: dict | None) -> OpenSegment | None:
    """The locator's part of a saved coil state."""
    if not state or not state.get("segment"):
        return None
    return OpenSegment(**state["segment"])
