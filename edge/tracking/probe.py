"""`edge check`'s tracking row: one bounded OPC UA connection and read of the coil node."""

from __future__ import annotations

import asyncio

from edge.config import TrackingConfig
from edge.errors import SteelInspectError
from edge.tracking.opcua import new_client, read_password


def probe_opcua(config: TrackingConfig) -> str:
    try:
        value = asyncio.run(asyncio.wait_for(_read(config), config.timeout * 2))
    except Exception as exc:  # noqa: BLE001 - every failure is one FAIL row
        reason = str(exc) or type(exc).__name__
        raise SteelInspectError(f"opcua {config.endpoint}: {reason}") from None
    return f"opcua {config.endpoint}: coil node {config.coil_node} = {value!r}"


async def _read(config: TrackingConfig):
    client = await new_client(config, read_password(config))
    await client.connect()
    try:
        return await client.get_node(config.coil_node).read_value()
    finally:
        await client.disconnect()
