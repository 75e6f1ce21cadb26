"""The `[sparkplug]` section: the daemon as a Sparkplug B 3.0 edge node (off by default)."""

from __future__ import annotations

from pydantic import Field

from edge.config import Section, TopicLevel


class SparkplugConfig(Section):
    enabled: bool = Field(
        False, description="publish Sparkplug B (spBv1.0/...) beside the JSON topics"
    )
    group_id: TopicLevel | None = Field(
        None, description="Sparkplug group id; unset = the line (site.line)"
    )
    edge_node_id: TopicLevel | None = Field(
        None,
        description="Sparkplug edge node id, unique per daemon; unset = "
        "'steel-inspect-CAMERA' (one daemon, one MQTT session and one NDEATH per camera)",
    )
    device_id: TopicLevel | None = Field(
        None, description="Sparkplug device id of the camera; unset = site.camera"
    )
    data_interval: float = Field(
        1.0, ge=1.0, le=3600,
        description="seconds between DDATA messages (changed metrics only; the daemon's "
        "housekeeping runs about once a second, so 1 is the shortest)",
    )
