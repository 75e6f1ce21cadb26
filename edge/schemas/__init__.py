"""JSON Schemas of the MQTT payloads (docs/mqtt.md), shipped with the package."""

from __future__ import annotations

import json
from importlib import resources

SCHEMA_FILES = {
    "defects": "defect-event-v2.json",
    "defects-v1": "defect-event-v1.json",
    "coils": "coil-report-v1.json",
    "stats": "stats-v1.json",
    "status": "status-v1.json",
    "latest-frame": "latest-frame-v1.json",  # a file in the archive, not an MQTT payload
    "archive-frame": "archive-frame-v1.json",  # the record beside an archived whole frame
}


def load_schema(topic: str) -> dict:
    """The schema of a topic's payload: 'defects' (v2), 'defects-v1', 'coils', 'stats', 'status'."""
    return json.loads(resources.files(__name__).joinpath(SCHEMA_FILES[topic]).read_text())


def encode_payload(body: dict) -> str:
    """Compact, strict JSON for every payload and outbox row: NaN or Infinity raise ValueError.

    Python's json writes `NaN`/`Infinity` by default, which is not JSON and breaks consumers.
    """
    return json.dumps(body, separators=(",", ":"), allow_nan=False)
