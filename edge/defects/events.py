"""Per-class thresholds, and the defect event of schema v1 (v2 is built in edge.defects).

A tile shows class c when its probability reaches the class threshold (the model card's, or the
`[events]` override) and `events.min_score`: the larger of the two is the threshold applied, and
the one events report. One event is built per frame with at least one defect; `seq` is added by
the outbox when the event is stored (it owns the persistent counter).
"""

from __future__ import annotations

import uuid

import numpy as np

from edge.config import EventsConfig, SiteConfig
from edge.errors import ConfigError
from edge.inference.modelcard import ModelCard
from edge.observe.stats import utc_iso
from edge.sources.base import Frame

DEFECT_EVENT_SCHEMA = "steel-inspect/defect-event/v1"
DEFECT_EVENT_V2_SCHEMA = "steel-inspect/defect-event/v2"


class DefectRule:
    """Per-class thresholds applied to a frame's tile probabilities."""

    def __init__(self, card: ModelCard, config: EventsConfig) -> None:
        names = card.class_names
        unknown = sorted(set(config.thresholds) - set(names))
        if unknown:
            raise ConfigError(
                f"events.thresholds.{unknown[0]}: unknown class; the model's classes are "
                + ", ".join(names)
            )
        thresholds = [
            config.thresholds.get(name, default)
            for name, default in zip(names, card.thresholds, strict=True)
        ]
        self.class_ids = [c.id for c in card.classes]
        self.class_names = names
        self.thresholds = np.asarray(thresholds, dtype=np.float32)
        self.cuts = np.maximum(self.thresholds, np.float32(config.min_score))
        self._threshold_values = [round(float(t), 6) for t in self.cuts]

    @property
    def applied_thresholds(self) -> list[float]:
        return list(self._threshold_values)

    def defects(self, probabilities: np.ndarray, boxes: np.ndarray) -> list[dict]:
        """Defects of one frame: probabilities [n, C], boxes [n, 4] (x, y, w, h in frame pixels)."""
        tiles, classes = np.nonzero(probabilities >= self.cuts[None, :])
        if not len(tiles):
            return []
        # float32 x 1e6 is exact in float64, so this equals Python's round(score, 6), faster
        scores = np.round(probabilities[tiles, classes].astype(np.float64), 6).tolist()
        tile_boxes = np.asarray(boxes)[tiles].tolist()
        return [
            {
                "class_id": self.class_ids[c],
                "class_name": self.class_names[c],
                "score": score,
                "threshold": self._threshold_values[c],
                "box": box,
            }
            for c, score, box in zip(classes.tolist(), scores, tile_boxes, strict=True)
        ]


class EventBuilder:
    def __init__(self, site: SiteConfig, model: dict[str, str]) -> None:
        self.site = site
        self._model = dict(model)

    def build(self, frame: Frame, defects: list[dict]) -> dict:
        return {
            "schema": DEFECT_EVENT_SCHEMA,
            "event_id": uuid.uuid4().hex,
            "ts": utc_iso(frame.timestamp),
            "line": self.site.line,
            "camera": self.site.camera,
            "frame_id": frame.frame_id,
            "model": dict(self._model),
            "defects": defects,
        }


def model_info(card: ModelCard, sha256: str) -> dict[str, str]:
    return {"name": card.name, "version": card.version, "sha256": sha256}
