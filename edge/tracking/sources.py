"""The tracking sources by `tracking.source` name: none, mqtt, opcua."""

from __future__ import annotations

from edge.config import TrackingConfig
from edge.tracking.tracker import Tracker


class NoTracking:
    def start(self) -> None:
        """No L2 input: coil_id stays null."""

    def stop(self) -> None:
        """Nothing to stop."""


def make_tracking(config: TrackingConfig, tracker: Tracker, mqtt):
    if config.source == "mqtt":
        from edge.tracking.mqtt import MqttTracking  # noqa: PLC0415

        source = MqttTracking(tracker, config.topic)
        mqtt.subscribe(source)
        return source
    if config.source == "opcua":
        from edge.tracking.opcua import OpcUaTracking  # noqa: PLC0415

        return OpcUaTracking(tracker, config)
    return NoTracking()
