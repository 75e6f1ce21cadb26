"""A live view of one camera's topics, as a SCADA engineer or the demo sees them.

Subscribes to `{prefix}/{line}/{camera}/#` with the daemon's own connection settings (auth, TLS)
and keeps a running summary: events and defects per class, end-to-end latency from the frame's
acquisition time to receipt here, the daemon's own frames/s, camera state and coil from `stats`,
the coil reports, and the `status` retained message. Events and coil reports can be appended to
JSON-lines logs as they arrive.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import EdgeConfig
from edge.delivery.mqtt import Topics, configure_client
from edge.schemas import encode_payload

log = logging.getLogger(__name__)


class Monitor:
    def __init__(self, config: EdgeConfig, events_log: Path | None = None,
                 coils_log: Path | None = None) -> None:
        self.topics = Topics.of(config.mqtt.topic_prefix, config.site)
        self.events = 0
        self.event_ids: set[str] = set()
        self.duplicates = 0
        self.defects: Counter[str] = Counter()
        self.latency_ms: list[float] = []
        self.last_seq: int | None = None
        self.gaps = 0
        self.status: dict = {}
        self.coil_reports: list[dict] = []
        self.stats: dict = {}
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._log = open(events_log, "a") if events_log else None  # noqa: SIM115
        self._coils_log = open(coils_log, "a") if coils_log else None  # noqa: SIM115
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"steel-inspect-monitor-{config.site.line}-{config.site.camera}-{time.time_ns()}",
        )
        configure_client(self._client, config.mqtt)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._mqtt = config.mqtt

    def start(self) -> None:
        self._client.connect_async(self._mqtt.host, self._mqtt.port, self._mqtt.keepalive)
        self._client.loop_start()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        for file in (self._log, self._coils_log):
            if file:
                file.close()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the monitor: %s", reason_code)
            return
        client.subscribe(f"{self.topics.base}/#", qos=1)

    def _on_message(self, client, userdata, message) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            log.warning("non-JSON message on %s", message.topic)
            return
        with self._lock:
            if message.topic == self.topics.defects:
                self._on_event(body)
            elif message.topic == self.topics.coils:
                self._on_coil_report(body)
            elif message.topic == self.topics.stats:
                self.stats = body
            elif message.topic == self.topics.status:
                self.status = body
                if body.get("state") == "stopped":
                    self.stopped.set()

    def _on_event(self, event: dict) -> None:
        if event["event_id"] in self.event_ids:
            self.duplicates += 1
            return
        self.event_ids.add(event["event_id"])
        self.events += 1
        if self.last_seq is not None and event["seq"] > self.last_seq + 1:
            self.gaps += event["seq"] - self.last_seq - 1
        self.last_seq = max(event["seq"], self.last_seq or 0)
        self.defects.update({d["class_name"] for d in event["defects"]})
        acquired = datetime.fromisoformat(event["ts"]).timestamp()
        self.latency_ms.append((time.time() - acquired) * 1e3)
        if self._log:
            self._log.write(encode_payload(event) + "\n")
            self._log.flush()

    def _on_coil_report(self, report: dict) -> None:
        if any(r["report_id"] == report["report_id"] for r in self.coil_reports):
            return
        self.coil_reports.append(report)
        if self._coils_log:
            self._coils_log.write(json.dumps(report, separators=(",", ":")) + "\n")
            self._coils_log.flush()

    def summary_line(self) -> str:
        with self._lock:
            fps = self.stats.get("fps") or 0.0
            processed = self.stats.get("frames_processed", 0)
            lat = (f"p50 {np.percentile(self.latency_ms, 50):.0f} ms "
                   f"p99 {np.percentile(self.latency_ms, 99):.0f} ms"
                   if self.latency_ms else "-")
            per_class = ", ".join(f"{k} {v}" for k, v in sorted(self.defects.items())) or "none"
            parts = [
                f"status {self.status.get('state', '?')}",
                f"camera {self.stats.get('camera_state', '?')}",
                f"frames {processed} at {fps:.1f}/s",
                f"events {self.events} (frames with: {per_class})",
                f"latency {lat}",
            ]
            if self.stats.get("tracking_state", "none") != "none" or self.coil_reports:
                parts.insert(2, f"coil {self.stats.get('coil_id') or '-'} "
                                f"(tracking {self.stats.get('tracking_state', '?')})")
                parts.append(f"coil reports {len(self.coil_reports)}")
            inspection = self.status.get("inspection") or {}
            if inspection.get("state") == "paused":  # no events then mean nothing
                parts.insert(0, f"INSPECTION PAUSED by {inspection.get('by') or '?'} since "
                                f"{inspection.get('since')} "
                                f"({self.stats.get('frames_paused', 0)} frames not inspected)")
            if self.gaps:
                parts.append(f"gaps {self.gaps}")
            if self.duplicates:
                parts.append(f"duplicates {self.duplicates}")
            return " | ".join(parts)
