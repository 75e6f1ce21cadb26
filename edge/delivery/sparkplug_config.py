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
    primary_host_id: TopicLevel | None = Field(
        None,
        description="host_id of the Primary Host Application (Ignition's MQTT Engine, say): "
        "births wait for its retained STATE online=true on spBv1.0/STATE/HOST_ID; while it is "
        "offline DDATA is held (up to hold_max messages) and sent flagged is_historical after "
        "the next birth; unset = publish whenever connected",
    )
    hold_max: int = Field(
        3600, ge=1, le=1_000_000,
        description="DDATA messages held in memory while the primary host is offline (one per "
        "data_interval at most: 3600 = an hour at 1 s); beyond, the oldest are dropped and "
        "counted",
    )
    data_interval: float = Field(
        1.0, ge=1.0, le=3600,
        description="seconds between DDATA messages (changed metrics only; the daemon's "
        "housekeeping runs about once a second, so 1 is the shortest)",
    )
