"""`tracking.source = "mqtt"`: L2 coil messages on a topic of the daemon's own broker connection."""

from __future__ import annotations

from edge.tracking.tracker import Tracker


class MqttTracking:
    """A `edge.delivery.mqtt.Subscription` that feeds the tracker; paho's thread calls it."""

    def __init__(self, tracker: Tracker, topic: str) -> None:
        self.tracker = tracker
        self.topic = topic

    def on_message(self, payload: bytes, topic: str) -> None:
        self.tracker.report_message(payload, topic)

    def on_subscribed(self, refusal: str | None) -> None:
        self.tracker.state = "ok" if refusal is None else f"refused: {refusal}"

    def on_lost(self, reason: str) -> None:
        self.tracker.state = "stopped" if reason == "stopped" else f"lost: {reason}"

    def start(self) -> None:
        """Nothing to start: the daemon's MQTT connection carries the subscription."""

    def stop(self) -> None:
        """Nothing to stop."""
