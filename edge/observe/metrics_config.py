"""The `[metrics]` section: a Prometheus endpoint and /healthz (off by default)."""

from __future__ import annotations

from pydantic import Field, field_validator

from edge.config import Section


class MetricsConfig(Section):
    enabled: bool = Field(False, description="serve /metrics (Prometheus) and /healthz over HTTP")
    listen: str = Field(
        "127.0.0.1:9464",
        description="HOST:PORT to listen on (0.0.0.0:9464 for a fleet's Prometheus; keep the "
        "port behind the firewall / IPAddressAllow)",
    )
    healthy_frame_age: float = Field(
        10.0, gt=0, le=3600,
        description="/healthz is 200 only if a frame was processed within this many seconds "
        "and the broker connection is up",
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:9464")
        return value

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)
