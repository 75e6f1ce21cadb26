"""The daemon's one MQTT connection (paho-mqtt 2.x, threaded network loop).

Topics under `{prefix}/{line}/{camera}/`: `status` (retained: `online` on every connect, `offline`
as last will, `stopped` on a clean exit), `defects` (QoS 1 events from the outbox), `coils` (QoS 1
coil reports from the outbox) and `stats`. Subscriptions (the L2 tracking topic) are renewed on
every connect.

Events may only be handed over once `ready` is set: that is when the broker acknowledged this
connection's birth message. paho re-sends the events still unacknowledged from the previous
connection right after the CONNACK, i.e. before the birth's PUBACK arrives, so waiting for it
keeps the events in order. Acknowledged event message ids are collected for the publisher
(`take_acks`); publish() may return after its PUBACK was already handled, which the publisher
tolerates because it registers ids and consumes acks in the same thread. Under MQTT 5 a PUBACK
may carry a refusal (e.g. "Not authorized" from the broker's ACL): those ids go to
`take_refusals`, the state says `events refused: REASON` until an event is accepted again.
"""

from __future__ import annotations

import logging
import ssl
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge.config import MqttConfig, SiteConfig
from edge.errors import ConfigError
from edge.observe.stats import utc_iso
from edge.schemas import encode_payload

log = logging.getLogger(__name__)

STATUS_SCHEMA = "steel-inspect/status/v1"
_STATUS_HEADROOM = 8  # in-flight slots kept for status messages beside the event window


@dataclass(frozen=True)
class Topics:
    base: str
    status: str
    defects: str
    stats: str
    coils: str

    @classmethod
    def of(cls, prefix: str, site: SiteConfig) -> Topics:
        base = f"{prefix}/{site.line}/{site.camera}"
        return cls(base=base, status=f"{base}/status", defects=f"{base}/defects",
                   stats=f"{base}/stats", coils=f"{base}/coils")


class Subscription(Protocol):
    """A topic the daemon's connection subscribes to; callbacks run in paho's network thread."""

    topic: str

    def on_message(self, payload: bytes, topic: str) -> None: ...

    def on_subscribed(self, refusal: str | None) -> None: ...

    def on_lost(self, reason: str) -> None: ...


def status_payload(state: str, site: SiteConfig, extra: dict | None = None) -> bytes:
    body = {"schema": STATUS_SCHEMA, "state": state, "line": site.line, "camera": site.camera}
    if state != "offline":  # the will is fixed at connect time, so a timestamp would be stale
        body["ts"] = utc_iso(time.time())
    body.update(extra or {})
    return encode_payload(body).encode()


def default_client_id(site: SiteConfig) -> str:
    return f"steel-inspect-{site.line}-{site.camera}"


def configure_client(client: paho.Client, config: MqttConfig) -> None:
    """Authentication and TLS from the config (the password is read here and kept nowhere)."""
    if config.username:
        client.username_pw_set(config.username, config.read_password())
    if config.use_tls:
        for key in ("ca_file", "cert_file", "key_file"):
            path = getattr(config, key)
            if path is not None and not path.is_file():
                raise ConfigError(f"mqtt.{key}: {path}: file not found")
        try:
            client.tls_set(
                ca_certs=_str(config.ca_file),
                certfile=_str(config.cert_file),
                keyfile=_str(config.key_file),
            )
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(f"mqtt: cannot set up TLS: {exc}") from None


class LastSocketError:
    """The last socket error paho met: a broken read (the broker's TLS alert when it demands a
    client certificate, say) reaches only paho's log callback, not on_disconnect."""

    def __init__(self, client: paho.Client) -> None:
        self._text = ""
        client.on_log = self._on_log

    def _on_log(self, client, userdata, level, buf) -> None:
        if level == paho.MQTT_LOG_ERR:
            self._text = buf.removeprefix("failed to receive on socket: ")

    def take(self) -> str:
        text, self._text = self._text, ""
        return text


def connect_failure() -> str:
    """The state after a failed connection attempt; paho calls on_connect_fail while it handles
    the attempt's OSError, so the error is the exception being handled."""
    exc = sys.exc_info()[1]
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc}"
    return f"unreachable: {exc or 'connection failed'}"


def closed_before_accepting(cause: str) -> str:
    return f"closed before accepting: {cause or 'the broker hung up'}"


class ShortLivedConnections:
    """Accepted connections that end within seconds, again and again: the broker is dropping
    this client for another with the same client id (MQTT 3.1.1 brokers just close the socket)."""

    SHORT_S = 5.0
    WINDOW_S = 60.0
    COUNT = 3

    def __init__(self) -> None:
        self._ends: deque[float] = deque()

    def clear(self) -> None:
        self._ends.clear()

    def add(self, lived_s: float) -> bool:
        """Record a lost connection that lived `lived_s`; True once the pattern is clear."""
        now = time.monotonic()
        if lived_s >= self.SHORT_S:
            self._ends.clear()
            return False
        self._ends.append(now)
        while self._ends and now - self._ends[0] > self.WINDOW_S:
            self._ends.popleft()
        return len(self._ends) >= self.COUNT


class MqttClient:
    def __init__(
        self, config: MqttConfig, site: SiteConfig, birth: dict | Callable[[], dict] | None = None
    ) -> None:
        self.config = config
        self.site = site
        self.topics = Topics.of(config.topic_prefix, site)
        self._birth = birth if callable(birth) else dict(birth or {})
        self._client = new_paho_client(config, config.client_id or default_client_id(site))
        self._accepted_at = 0.0
        self._client.max_inflight_messages = config.max_inflight + _STATUS_HEADROOM
        self._client_id = config.client_id or default_client_id(site)
        self._connection = ""
        self._short_lives = ShortLivedConnections()
        self._ever_accepted = False
        self._new_connection()
        configure_client(self._client, config)
        self._client.reconnect_delay_set(config.reconnect.initial, config.reconnect.max)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._socket_error = LastSocketError(self._client)
        self.ready = threading.Event()
        self.state = "connecting"
        self._acks: deque[int] = deque()
        self._refusals: deque[tuple[int, str]] = deque()
        self._birth_mid: int | None = None
        self._birth_lock = threading.Lock()  # build + publish of the retained status
        self._accepted = False  # this connection's CONNACK accepted it (under _birth_lock)
        self._started = False
        self._subscriptions: list[Subscription] = []
        self._sub_mids: dict[int, Subscription] = {}

    def _new_connection(self) -> None:
        """A fresh connection id and the will for the next CONNECT: birth and will carry both, so
        a consumer can tell a stale `offline` (an older connection's) from a current one."""
        self._connection = uuid.uuid4().hex[:12]
        self._connection_ts = utc_iso(time.time())
        identity = {"connection": self._connection, "connection_ts": self._connection_ts}
        self._identity = identity
        self._client.will_set(
            self.topics.status, status_payload("offline", self.site, identity), qos=1,
            retain=True,
        )

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def start(self) -> None:
        log.info("connecting to MQTT broker %s (TLS %s)", self.address,
                 "on" if self.config.use_tls else "off")
        connect_async(self._client, self.config)
        self._client.loop_start()
        self._started = True

    def subscribe(self, subscription: Subscription) -> None:
        """Subscribe (QoS 1) on every connect; call before start()."""
        self._subscriptions.append(subscription)
        self._client.message_callback_add(subscription.topic, self._deliver(subscription))
        self._client.on_subscribe = self._on_subscribe

    @staticmethod
    def _deliver(subscription: Subscription):
        def on_message(client, userdata, message) -> None:
            try:
                subscription.on_message(message.payload, message.topic)
            except Exception:  # a subscriber's bug must not end paho's network thread
                log.exception("handling a message on %s failed", message.topic)
        return on_message

    def publish_event(self, topic: str, payload: bytes) -> int | None:
        """Hand one stored event to paho; its message id, or None if it was not taken."""
        info = self._client.publish(topic, payload, qos=self.config.qos)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            log.warning("publish to %s not taken: %s", topic, paho.error_string(info.rc))
            return None
        return info.mid

    def take_acks(self) -> list[int]:
        acks = []
        while self._acks:
            acks.append(self._acks.popleft())
        return acks

    def take_refusals(self) -> list[tuple[int, str]]:
        """(message id, reason) of events the broker refused (MQTT 5 only)."""
        refusals = []
        while self._refusals:
            refusals.append(self._refusals.popleft())
        return refusals

    def publish_stats(self, payload: dict) -> bool:
        if not self.ready.is_set():
            return False
        data = encode_payload(payload)
        return self._client.publish(self.topics.stats, data, qos=0).rc == 0

    def republish_birth(self) -> bool:
        """The birth again, with its fields as they are now (e.g. after a model swap); False
        while no connection is accepted (the next connect's birth says it). Published from the
        CONNACK on: paho keeps QoS 1 messages in order, so it follows that connection's birth."""
        with self._birth_lock:
            if not self._accepted:
                return False
            return self._publish_birth("online").rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def _publish_birth(self, state: str) -> paho.MQTTMessageInfo:
        """Build and publish the retained status; the caller holds `_birth_lock`, so the last
        one retained is the newest built."""
        payload = status_payload(state, self.site, {**self._current_birth(), **self._identity})
        return self._client.publish(self.topics.status, payload, qos=1, retain=True)

    def stop(self, timeout: float = 2.0) -> None:
        """Publish `stopped` (if connected), disconnect cleanly (no last will) and end the loop."""
        if not self._started:
            return
        if self.ready.is_set():
            with self._birth_lock:
                self._accepted = False  # no `online` after the `stopped`
                info = self._publish_birth("stopped")
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish the stopped status: %s", exc)
        self.state = "stopped"  # before disconnect(): on_disconnect then logs no warning
        self.ready.clear()
        self._client.disconnect()
        self._client.loop_stop()
        self._started = False

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.state = f"refused: {reason_code}"
            log.error(
                "MQTT broker %s refused the connection: %s (check mqtt.username, the password, "
                "mqtt.client_id and the broker's ACL); retrying with backoff",
                self.address, reason_code,
            )
            return
        self.state = "connected"
        self._ever_accepted = True
        self._accepted_at = time.monotonic()
        log.info("connected to MQTT broker %s (connection %s)", self.address, self._connection)
        with self._birth_lock:
            self._accepted = True
            self._birth_mid = self._publish_birth("online").mid
        for subscription in self._subscriptions:
            _, mid = client.subscribe(subscription.topic, qos=1)
            self._sub_mids[mid] = subscription

    def _current_birth(self) -> dict:
        return self._birth() if callable(self._birth) else self._birth

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        subscription = self._sub_mids.pop(mid, None)
        if subscription is None:
            return
        failed = [code for code in reason_codes if code.is_failure]
        if failed:
            log.error("MQTT broker %s refused the subscription to %s: %s (check the broker's "
                      "ACL)", self.address, subscription.topic, failed[0])
        subscription.on_subscribed(None if not failed else str(failed[0]))

    def _on_connect_fail(self, client, userdata) -> None:
        self._new_connection()
        self._short_lives.clear()  # a broker restarting refuses in between; a twin never does
        state = connect_failure()
        if state != self.state:
            log.log(logging.ERROR if state.startswith("TLS") else logging.WARNING,
                    "MQTT broker %s: %s; retrying with backoff", self.address, state)
        self.state = state

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.ready.clear()
        with self._birth_lock:
            self._accepted = False
        for subscription in self._subscriptions:
            subscription.on_lost("stopped" if self.state == "stopped" else "broker disconnected")
        if self.state != "stopped":
            self._new_connection()  # the next CONNECT's will
        if self.state == "connected" or self.state.startswith("events refused"):
            self._connection_lost(reason_code)
        elif self.state != "stopped" and not self.state.startswith("refused"):
            self._closed_unaccepted(reason_code)

    def _connection_lost(self, reason_code) -> None:
        reason = "connection lost" if reason_code == "Unspecified error" else str(reason_code)
        lived = time.monotonic() - self._accepted_at
        if reason_code == "Session taken over" or self._short_lives.add(lived):
            self.state = f"disconnected: another client uses client id {self._client_id}"
            log.error(
                "MQTT broker %s: %s (%s; connections end within seconds of being accepted). "
                "Give each daemon its own mqtt.client_id", self.address, self.state, reason,
            )
            return
        if reason_code == "Keep alive timeout":
            reason = f"no answer from the broker within keepalive ({self.config.keepalive} s)"
        log.warning("disconnected from MQTT broker %s: %s", self.address, reason)
        self.state = f"disconnected: {reason}"

    def _closed_unaccepted(self, reason_code) -> None:
        cause = self._socket_error.take()
        if reason_code == "Keep alive timeout":
            state = ("no CONNACK: the broker took the TCP connection but did not answer within "
                     f"keepalive ({self.config.keepalive} s); is it hung or overloaded?")
            if state != self.state:
                log.warning("MQTT broker %s: %s; retrying with backoff", self.address, state)
            self.state = state
            return
        state = closed_before_accepting(cause)
        if state != self.state:
            tls_cause = any(w in cause for w in ("SSL", "TLS", "certificate", "alert"))
            hint = ("a broker that demands client certificates needs mqtt.cert_file and "
                    "mqtt.key_file; see also the broker's log" if tls_cause or not
                    self._ever_accepted else "see the broker's log")
            log.error("MQTT broker %s %s (%s); retrying with backoff", self.address, state, hint)
        self.state = state

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        refused = reason_code.is_failure  # only MQTT 5 PUBACKs carry a refusal
        if mid == self._birth_mid:
            self._birth_mid = None
            if refused:
                log.error("MQTT broker %s refused the status message on %s: %s (check the "
                          "broker's ACL)", self.address, self.topics.status, reason_code)
            self.ready.set()  # events may still be allowed; each refusal shows on its own
            return
        if refused:
            state = f"events refused: {reason_code}"
            if state != self.state:
                log.error(
                    "MQTT broker %s refused an event on %s: %s (the daemon's user needs write "
                    "access to %s/#); refused events stay in the outbox and are retried",
                    self.address, self.topics.defects, reason_code, self.topics.base,
                )
            self.state = state
            self._refusals.append((mid, str(reason_code)))
            return
        if self.state.startswith("events refused"):
            log.info("MQTT broker %s accepts events again", self.address)
            self.state = "connected"
        self._acks.append(mid)


def new_paho_client(config: MqttConfig, client_id: str) -> paho.Client:
    if config.protocol == "5":
        return paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    return paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id,
        clean_session=True,  # durability is the outbox's job, not the broker session's
        protocol=paho.MQTTv311,
    )


def connect_async(client: paho.Client, config: MqttConfig) -> None:
    if config.protocol == "5":  # a fresh session every time, as clean_session does for 3.1.1
        client.connect_async(config.host, config.port, config.keepalive, clean_start=True)
    else:
        client.connect_async(config.host, config.port, config.keepalive)


def probe_broker(config: MqttConfig, site: SiteConfig, timeout: float = 5.0) -> tuple[bool, str]:
    """Connect once, without a will or birth (a daemon may be running), and disconnect.

    Under MQTT 5 it also publishes one QoS 1 message to PREFIX/LINE/CAMERA/check: the PUBACK
    says whether the broker's ACL lets this user publish there (3.1.1 brokers cannot say).
    """
    outcome: dict[str, str] = {}
    done = threading.Event()
    check_topic = Topics.of(config.topic_prefix, site).base + "/check"

    def finish(result: str) -> None:
        outcome.setdefault("result", result)
        done.set()

    def on_connect(client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            finish(f"refused: {reason_code}")
        elif config.protocol == "5":
            check = {"schema": "steel-inspect/check/v1", "ts": utc_iso(time.time())}
            payload = encode_payload(check)
            client.publish(check_topic, payload, qos=1)
        else:
            finish("ok")

    def on_publish(client, userdata, mid, reason_code, properties):
        finish(f"publish to {check_topic} refused: {reason_code}" if reason_code.is_failure
               else "ok")

    def on_connect_fail(client, userdata):
        finish(connect_failure())

    def on_disconnect(client, userdata, flags, reason_code, properties):
        finish(closed_before_accepting(socket_error.take()))

    client_id = (config.client_id or default_client_id(site)) + "-check"
    client = new_paho_client(config, client_id)
    configure_client(client, config)
    client.on_connect, client.on_connect_fail = on_connect, on_connect_fail
    client.on_disconnect, client.on_publish = on_disconnect, on_publish
    socket_error = LastSocketError(client)
    connect_async(client, config)
    client.loop_start()
    try:
        if not done.wait(timeout):
            return False, f"no answer from {config.host}:{config.port} within {timeout:g} s"
        result = outcome["result"]
        if result != "ok":
            return False, result
        rights = ("publish allowed" if config.protocol == "5"
                  else "MQTT 3.1.1: publish rights cannot be checked")
        return True, f"connected to {config.host}:{config.port}, {rights}"
    finally:
        client.disconnect()
        client.loop_stop()


def _str(path) -> str | None:
    return None if path is None else str(path)
