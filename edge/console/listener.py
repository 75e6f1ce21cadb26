"""The console's MQTT subscription: every camera of the line, `{prefix}/{line}/+/#`.

Its own client id and a clean session; connection settings (auth, TLS) are the daemon's own
`[mqtt]` section. paho reconnects by itself; the state shows `disconnected: REASON` meanwhile.
Messages that are not JSON objects, or lack the keys the console reads, are counted and skipped.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import datetime

from edge.config import EdgeConfig
from edge.console.state import ConsoleState
from edge.delivery.mqtt import configure_client, connect_async, new_paho_client

log = logging.getLogger(__name__)

_REQUIRED = {
    "defects": ("event_id", "camera", "defects"),
    "coils": ("coil_id", "camera"),
}


class ConsoleListener:
    def __init__(self, config: EdgeConfig, state: ConsoleState) -> None:
        self._mqtt = config.mqtt
        self.filter = f"{config.mqtt.topic_prefix}/{config.site.line}/+/#"
        self._state = state
        self.malformed = 0
        client_id = f"steel-inspect-console-{config.site.line}-{os.getpid()}"
        self._client = new_paho_client(config.mqtt, client_id)
        configure_client(self._client, config.mqtt)
        self._client.reconnect_delay_set(
            config.mqtt.reconnect.initial, config.mqtt.reconnect.max
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def start(self) -> None:
        connect_async(self._client, self._mqtt)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the console: %s", reason_code)
            self._state.set_broker(f"disconnected: refused ({reason_code})")
            return
        client.subscribe(self.filter, qos=1)
        self._state.set_broker("subscribing")

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:  # e.g. the broker's ACL: connected, but nothing will ever arrive
            log.error("broker refused the console's subscription to %s: %s", self.filter,
                      refused[0])
            self._state.set_broker(f"subscription refused: {refused[0]}")
        else:
            self._state.set_broker("connected")  # from now on, messages arrive

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._state.set_broker(f"disconnected: {reason_code}")

    def _on_message(self, client, userdata, message) -> None:
        parts = message.topic.rsplit("/", 2)
        if len(parts) < 3:
            return
        camera, kind = parts[1], parts[2]
        try:
            body = json.loads(message.payload)
            if not isinstance(body, dict) or any(k not in body for k in _REQUIRED.get(kind, ())):
                raise ValueError("not a payload of that topic")
            self._dispatch(kind, camera, body)
        except (ValueError, KeyError, TypeError) as exc:
            self.malformed += 1
            log.warning("skipped a message on %s: %s", message.topic, exc)

    def _dispatch(self, kind: str, camera: str, body: dict) -> None:
        if kind == "defects":
            self._state.add_event(body, _latency_ms(body.get("ts")))
        elif kind == "coils":
            self._state.add_coil_report(body)
        elif kind == "stats":
            self._state.set_stats(camera, body)
        elif kind == "status":
            self._state.set_status(camera, body)


def _latency_ms(ts: str | None) -> float | None:
    try:
        return (time.time() - datetime.fromisoformat(ts).timestamp()) * 1e3
    except (TypeError, ValueError):
        return None
