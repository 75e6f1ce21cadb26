"""Daemon payloads (events v2, coil reports, stats, status) as the console receives them, plus an
archive folder with real images; shared by the console's HTTP and browser tests.

`image` on defects and `map` on coil reports are the image-archive issue's additions; `schema_valid`
drops them before validating against today's shipped schemas.
"""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from edge.observe.latest_frame import LatestFrame, LatestFrameWriter
from edge.schemas import load_schema

CLASSES = ["rolled-in scale", "scratches", "rolling films"]
MODEL = {"name": "tiny", "version": "t1", "sha256": "0" * 64}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(camera: str, coil: str, seq: int, md_m: float, class_id: int = 2,
          score: float = 0.9, cd_offset_mm: float = 0.0, image: str | None = None,
          side: str = "top") -> dict:
    defect = {"defect_id": seq, "class_id": class_id, "class_name": CLASSES[class_id - 1],
              "score": score, "threshold": 0.5, "box_px": [256, 0, 256, 256],
              "md_m": [md_m, md_m + 0.2], "cd_mm": [cd_offset_mm + 200.0, cd_offset_mm + 400.0],
              "area_mm2": 40000.0, "tiles": 1}
    if image:
        defect["image"] = image
    return {"schema": "steel-inspect/defect-event/v2", "stream": "a" * 32, "seq": seq,
            "event_id": uuid.uuid4().hex, "ts": now_iso(), "line": "L1", "camera": camera,
            "side": side, "frame_id": f"f{seq:06d}.png", "coil_id": coil, "md_m": md_m,
            "tracking": "ok", "model": MODEL, "defects": [defect]}


def coil_report(camera: str, coil: str, seq: int = 1, map_png: str | None = None) -> dict:
    counts = dict.fromkeys(CLASSES, 0) | {"scratches": 3}
    report = {"schema": "steel-inspect/coil-report/v1", "stream": "a" * 32, "seq": seq,
              "report_id": uuid.uuid4().hex, "line": "L1", "camera": camera, "side": "top",
              "coil_id": coil, "started": now_iso(), "ended": now_iso(), "end_reason": "tracking",
              "length_m": 120.5, "l2_length_m": None,
              "frames": {"in": 100, "processed": 100, "failed": 0, "dropped": 0},
              "coverage": 1.0, "defects": counts, "area_mm2": dict.fromkeys(CLASSES, 0.0),
              "defects_per_100m": dict.fromkeys(CLASSES, 0.0), "restarts": 0,
              "tracking": {"ok": 100}, "model": MODEL, "map": map_png}
    return report


def stats(camera: str, frames: int, coil: str | None = "C1", fps: float = 5.0) -> dict:
    ms = {"p50": 12.5, "p99": 20.0}
    return {"schema": "steel-inspect/stats/v1", "ts": now_iso(), "line": "L1", "camera": camera,
            "uptime_s": frames / 5, "frames_in": frames, "frames_processed": frames,
            "frames_dropped": 1, "frames_failed": 0, "fps": fps, "inference_ms": ms,
            "overhead_ms": ms, "frame_queue_depth": 0, "events": frames // 2,
            "events_rejected": 0, "events_refused": 0, "outbox_depth": 3, "outbox_dropped": 0,
            "outbox_errors": 0, "outbox_replaced": 0, "model_faults": 0, "camera_state": "ok",
            "camera_counters": {}, "mqtt_state": "connected", "tracking_state": "ok",
            "tracking_counters": {"messages": 1, "malformed": 0}, "coil_id": coil,
            "coil_md_m": frames * 0.2}


def status(camera: str) -> dict:
    return {"schema": "steel-inspect/status/v1", "state": "online", "line": "L1",
            "camera": camera, "ts": now_iso(), "model": MODEL, "backend": "onnxruntime",
            "software": {"steel-inspect": "0.1.0", "python": "3.11"}}


def schema_valid(kind: str, payload: dict) -> None:
    import jsonschema  # noqa: PLC0415

    jsonschema.validate(copy.deepcopy(payload), load_schema(kind))


def make_archive(root: Path, defects: int = 8, cameras=("cam1", "cam2")) -> list[str]:
    """Defect crops, a coil map PNG and each camera's latest frame (through the real writer)."""
    rng = np.random.default_rng(7)
    images = []
    for i in range(defects):
        rel = f"defects/C1/{i:04d}.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        crop = np.full((128, 128), 110 + int(rng.integers(0, 60)), np.uint8)
        cv2.line(crop, (10, int(rng.integers(0, 128))), (118, int(rng.integers(0, 128))), 30, 4)
        cv2.imwrite(str(root / rel), crop)
        images.append(rel)
    (root / "maps").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "maps/C0-cam1.png"), np.full((200, 80, 3), 90, np.uint8))
    for camera in cameras:
        write_latest(root, camera)
    return images


def write_latest(root: Path, camera: str, frame_id: str = "f000001.png") -> None:
    # brushed-steel grey with a dark scratch in the first tile (compresses well in screenshots)
    x = np.linspace(0, 1, 1024)[None, :]
    pixels = (120 + 25 * np.sin(6 * x) + np.zeros((256, 1))).astype(np.uint8)
    cv2.line(pixels, (40, 30), (210, 220), 40, 3)
    boxes = [(x, 0, 256, 256) for x in range(0, 1024, 256)]
    scores = np.array([[0.1, 0.92, 0.05]] + [[0.02, 0.1, 0.2]] * 3)
    frame = LatestFrame(pixels, frame_id, now_iso(), 256, boxes, scores, CLASSES,
                        [0.5, 0.5, 0.5], [{"class_id": 2, "class_name": "scratches",
                                           "score": 0.92, "box_px": [0, 0, 256, 256]}])
    writer = LatestFrameWriter(root, camera, interval_s=0.01)
    writer.write(frame)
