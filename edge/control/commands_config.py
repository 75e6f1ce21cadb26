"""The `[commands]` section: commands from SCADA over MQTT 5 (off by default)."""

from __future__ import annotations

from pydantic import Field

from edge.config import Section


class CommandsConfig(Section):
    enabled: bool = Field(
        False,
        description="accept commands on PREFIX/LINE/CAMERA/cmd/NAME (MQTT 5 request/response; "
        "restrict who may publish there with the broker's ACL, docs/mqtt.md)",
    )
