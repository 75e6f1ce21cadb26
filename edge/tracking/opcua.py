"""`tracking.source = "opcua"`: an OPC UA client (asyncua) subscribed to the L2 coil nodes.

It runs its own asyncio loop in its own thread: connect (bounded by `tracking.timeout`), read the
nodes once, subscribe to their data changes, then probe the server every second; any failure
disconnects, shows `lost: REASON` in the tracker's state and reconnects with backoff. Inference
never waits on it: the tracker is the only thing it shares.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from edge.backoff import Backoff
from edge.config import TrackingConfig
from edge.errors import ConfigError
from edge.tracking.tracker import Tracker

log = logging.getLogger(__name__)

_PROBE_S = 1.0
_PUBLISHING_MS = 100


class OpcUaTracking:
    def __init__(self, tracker: Tracker, config: TrackingConfig) -> None:
        self.tracker = tracker
        self.config = config
        self._password = read_password(config)
        self._backoff = Backoff(config.reconnect.initial, config.reconnect.max)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tracking-opcua", daemon=True)
        self._thread.start()
        self._ready.wait(5.0)

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("OPC UA tracking thread did not stop within %.0f s", timeout)
        self._thread = None

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:  # never let the tracking thread die silently
            log.exception("OPC UA tracking stopped")
            self.tracker.state = "failed (see log)"

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        while not self._stop.is_set():
            try:
                await self._session()
            except Exception as exc:  # noqa: BLE001 - every failure means: reconnect
                self._lost(exc)
            if self._stop.is_set():
                break
            delay = self._backoff.next_delay()
            try:
                await asyncio.wait_for(self._stop.wait(), delay)
            except TimeoutError:
                pass
        self.tracker.state = "stopped"

    async def _session(self) -> None:
        config = self.config
        client = await new_client(config, self._password)
        await asyncio.wait_for(client.connect(), config.timeout)
        try:
            nodes = self._nodes(client)
            await self._read_once(nodes)
            subscription = await client.create_subscription(_PUBLISHING_MS, _Changes(self))
            await subscription.subscribe_data_change(list(nodes.values()))
            self.tracker.state = "ok"
            self._backoff.reset()
            log.info("tracking: OPC UA %s connected", config.endpoint)
            while not self._stop.is_set():
                try:
                    await asyncio.wait_for(self._stop.wait(), _PROBE_S)
                except TimeoutError:
                    await asyncio.wait_for(client.nodes.server_state.read_value(), config.timeout)
        finally:
            try:
                await asyncio.wait_for(client.disconnect(), config.timeout)
            except Exception:  # noqa: BLE001 - the connection is gone already
                pass

    def _nodes(self, client) -> dict:
        names = {"coil": self.config.coil_node, "speed": self.config.speed_node,
                 "length": self.config.length_node}
        return {key: client.get_node(node_id) for key, node_id in names.items() if node_id}

    async def _read_once(self, nodes: dict) -> None:
        values = {key: await node.read_value() for key, node in nodes.items()}
        self.report(values)
        self._node_keys = {node.nodeid: key for key, node in nodes.items()}

    def report(self, values: dict) -> None:
        coil = values.get("coil")
        coil_id = str(coil) if coil not in (None, "") else None
        self.tracker.report(coil_id, _float(values.get("speed")), _float(values.get("length")))

    def _lost(self, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        state = f"lost: {reason}"[:200]
        if state != self.tracker.state:
            log.warning("tracking: OPC UA %s %s; reconnecting with backoff",
                        self.config.endpoint, state)
        self.tracker.state = state


class _Changes:
    """asyncua's data-change handler: one node changed."""

    def __init__(self, owner: OpcUaTracking) -> None:
        self._owner = owner

    def datachange_notification(self, node, value, data) -> None:
        key = self._owner._node_keys.get(node.nodeid)
        if key is not None:
            self._owner.report({key: value})


async def new_client(config: TrackingConfig, password: str | None):
    """An asyncua client set up from the config (not connected yet)."""
    from asyncua import Client  # noqa: PLC0415 - only line PCs with OPC UA tracking need it

    client = Client(config.endpoint, timeout=config.timeout)
    if config.username:
        client.set_user(config.username)
        client.set_password(password or "")
    if config.security:
        await client.set_security_string(config.security)
    return client


def _float(value) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def read_password(config: TrackingConfig) -> str | None:
    if config.password_file is None:
        return None
    try:
        lines = config.password_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"tracking.password_file: cannot read {config.password_file}: "
                          f"{reason}") from None
    return lines[0] if lines else ""
