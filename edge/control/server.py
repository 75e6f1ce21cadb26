"""Commands from SCADA: `{prefix}/{line}/{camera}/cmd/{name}`, MQTT 5 request/response.

A command is a JSON object (an empty payload counts as `{}`); the answer goes to the request's
response topic with its correlation data, as `steel-inspect/command-response/v1` JSON:
`{"command", "ok": true, "result": {...}}` or `{"command", "ok": false, "error": "..."}`. Every
command is logged with its name, body and response topic (MQTT carries no sender identity: the
broker's ACL decides who may publish here; an optional `"by"` in the body is logged as well).
Handlers run on this connection's network thread and must be quick; an exception in one is an
error response, never a crash.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.config import MqttConfig, SiteConfig
from edge.delivery.mqtt import Topics, configure_client, default_client_id
from edge.observe.stats import utc_iso

log = logging.getLogger(__name__)

RESPONSE_SCHEMA = "steel-inspect/command-response/v1"
Handler = Callable[[dict], dict]


class CommandError(Exception):
    """A command that cannot be carried out; its message is the error response."""


class CommandServer:
    def __init__(self, mqtt: MqttConfig, site: SiteConfig, handlers: dict[str, Handler]) -> None:
        self._mqtt = mqtt
        self.prefix = Topics.of(mqtt.topic_prefix, site).base + "/cmd/"
        self._handlers = dict(handlers)
        client_id = (mqtt.client_id or default_client_id(site)) + "-cmd"
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                   protocol=paho.MQTTv5)  # request/response needs MQTT 5
        configure_client(self._client, mqtt)
        self._client.reconnect_delay_set(mqtt.reconnect.initial, mqtt.reconnect.max)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self.handled = 0

    def start(self) -> None:
        self._client.connect_async(self._mqtt.host, self._mqtt.port, self._mqtt.keepalive,
                                   clean_start=True)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("commands: broker %s:%s refused the connection: %s", self._mqtt.host,
                      self._mqtt.port, reason_code)
            return
        client.subscribe(self.prefix + "+", qos=1)
        log.info("commands: listening on %s+ (%s)", self.prefix, ", ".join(self._handlers))

    def _on_message(self, client, userdata, message) -> None:
        name = message.topic.removeprefix(self.prefix)
        props = message.properties
        response_topic = getattr(props, "ResponseTopic", None)
        correlation = getattr(props, "CorrelationData", None)
        body, answer = None, None
        try:
            body = _parse(message.payload)
            log.info("command %s (by %s) %s, answer to %s", name, body.get("by", "?"),
                     json.dumps(body, allow_nan=False), response_topic or "nobody")
            handler = self._handlers.get(name)
            if handler is None:
                raise CommandError(f"unknown command {name!r}; known: "
                                   + ", ".join(sorted(self._handlers)))
            answer = {"ok": True, "result": handler(body)}
        except CommandError as exc:
            answer = {"ok": False, "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 (a handler bug answers, it never crashes)
            log.exception("command %s failed", name)
            answer = {"ok": False, "error": f"internal error: {exc}"}
        self.handled += 1
        if not answer["ok"]:
            log.warning("command %s refused: %s", name, answer["error"])
        if response_topic:
            self._respond(response_topic, correlation, name, answer)

    def _respond(self, topic: str, correlation, name: str, answer: dict) -> None:
        response = {"schema": RESPONSE_SCHEMA, "command": name, "ts": utc_iso(time.time()),
                    **answer}
        props = Properties(PacketTypes.PUBLISH)
        if correlation is not None:
            props.CorrelationData = correlation
        self._client.publish(topic, json.dumps(response, allow_nan=False), qos=1,
                             properties=props)


def _parse(payload: bytes) -> dict:
    if not payload.strip():
        return {}
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CommandError(f"payload is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise CommandError("payload must be a JSON object")
    return body
