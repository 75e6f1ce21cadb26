"""The daemon as a Sparkplug B 3.0 edge node, on its own MQTT connection to the [mqtt] broker.

Topics `spBv1.0/GROUP/{NBIRTH,NDEATH,NCMD}/NODE` and `spBv1.0/GROUP/{DBIRTH,DDATA,DDEATH}/NODE/
CAMERA`. Every CONNECT registers NDEATH (QoS 1, carrying bdSeq) as the will; on every connect the
node subscribes to NCMD and publishes NBIRTH (seq 0, the same bdSeq, all node metrics) and
DBIRTH; `tick()` sends DDATA with the metrics that changed, by alias. `seq` counts every message
but NDEATH, 0..255 wrapping. NCMD `Node Control/Rebirth` = true is answered with a new birth.
A clean stop sends DDEATH and NDEATH itself before disconnecting.

The camera device lives only while `device_alive()` says so (the camera acquiring): when it goes
(lost, reconnecting, replay finished) `watch_device()` sends the changed metrics one last time
(Camera/State tells why) and a DDEATH; when it comes back, a new DBIRTH with every device metric,
then DDATA again. While it is gone the node stays born and sends no DDATA; a (re)birth then is an
NBIRTH alone.

With `primary_host_id` (edge.delivery.sparkplug_host) the node also subscribes to the host's
STATE and sends its births only while the host is online; a host going offline stops the data
(the session stays: with one broker there is no other server to move to), and its return brings
a new NBIRTH/DBIRTH followed by the DDATA held meanwhile, flagged is_historical. DDATA is held
whenever births are not out (host offline, or broker away).

Nothing here may stop inspection: callbacks and tick() log errors instead of raising.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from edge.config import MqttConfig, SiteConfig
from edge.delivery.mqtt import configure_client, connect_async, default_client_id, new_paho_client
from edge.delivery.sparkplug_bdseq import SEQ_MODULO, BdSeqStore
from edge.delivery.sparkplug_config import SparkplugConfig
from edge.delivery.sparkplug_host import HeldData, PrimaryHost
from edge.delivery.sparkplug_metrics import BD_SEQ, REBIRTH, device_metrics, node_metrics
from edge.delivery.sparkplug_payload import (
    add_metric,
    decode,
    metric_value,
    now_ms,
    payload,
)

log = logging.getLogger(__name__)

NAMESPACE = "spBv1.0"
Snapshot = Callable[[], dict]


class SparkplugTopics:
    def __init__(self, group: str, node: str, device: str) -> None:
        node_base = f"{NAMESPACE}/{group}/%s/{node}"
        self.nbirth, self.ndeath, self.ncmd = (node_base % t for t in ("NBIRTH", "NDEATH", "NCMD"))
        self.dbirth, self.ddata, self.ddeath = (
            f"{node_base % t}/{device}" for t in ("DBIRTH", "DDATA", "DDEATH")
        )
        self.dcmd = f"{node_base % 'DCMD'}/{device}"


class SparkplugNode:
    def __init__(self, config: SparkplugConfig, mqtt: MqttConfig, site: SiteConfig, *,
                 state_dir: Path, class_names: list[str], node_values: Snapshot,
                 device_values: Snapshot, device_alive: Callable[[], bool] = lambda: True) -> None:
        self.config = config
        self.group_id = config.group_id or site.line
        self.edge_node_id = config.edge_node_id or f"steel-inspect-{site.camera}"
        self.device_id = config.device_id or site.camera
        self.topics = SparkplugTopics(self.group_id, self.edge_node_id, self.device_id)
        self._mqtt = mqtt
        self._node_specs = node_metrics()
        self._device_specs = device_metrics(class_names, len(self._node_specs) + 1)
        self._node_values, self._device_values = node_values, device_values
        self._device_alive = device_alive
        self._device_born = False  # DBIRTH out in this session and no DDEATH since
        self.device_deaths = 0
        self._bdseq_store = BdSeqStore(Path(state_dir) / "sparkplug-bdseq")
        self._lock = threading.Lock()  # seq and "what was last sent" are shared by two threads
        self._seq = 0
        self._sent: dict[str, object] = {}
        self._bdseq = self._will_bdseq = self._bdseq_store.take()  # session's, next CONNECT's
        self.births = 0
        self.state = "connecting"
        self.online = threading.Event()  # connected, births sent: DDATA goes out live
        self._connected = False
        self.primary = (PrimaryHost(NAMESPACE, config.primary_host_id)
                        if config.primary_host_id else None)
        self.held = HeldData(config.hold_max)
        client_id = (mqtt.client_id or default_client_id(site)) + "-spb"
        self._client = new_paho_client(mqtt, client_id)
        configure_client(self._client, mqtt)
        self._client.reconnect_delay_set(mqtt.reconnect.initial, mqtt.reconnect.max)
        self._set_will()
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.message_callback_add(self.topics.ncmd, self._on_ncmd)
        if self.primary is not None:
            self._client.message_callback_add(self.primary.topic, self._on_state)
        self._started = False

    @property
    def bdseq(self) -> int:
        return self._bdseq

    def start(self) -> None:
        log.info("Sparkplug B edge node %s/%s (device %s) on %s:%s", self.group_id,
                 self.edge_node_id, self.device_id, self._mqtt.host, self._mqtt.port)
        connect_async(self._client, self._mqtt)
        self._client.loop_start()
        self._started = True

    def tick(self) -> None:
        """DDATA with the device metrics that changed since they were last sent (held for the
        primary host while the births are not out)."""
        if not self.online.is_set() and self.primary is None:
            return
        try:
            with self._lock:  # births set `online` under this lock: nothing is held past them
                if self.online.is_set():
                    self._follow_device()
                    if self._device_born:
                        self._publish_data()
                elif self._device_alive():  # a dead camera's values are not history
                    self._publish_data(hold=True)
        except Exception:  # noqa: BLE001 (a metrics bug must not reach the inspection loop)
            log.exception("Sparkplug DDATA failed")

    def watch_device(self) -> None:
        """DDEATH as soon as the camera goes, DBIRTH as soon as it is back (called often: it
        only reads the camera state unless that changed)."""
        if not self.online.is_set() or self._device_alive() == self._device_born:
            return
        try:
            with self._lock:
                if self.online.is_set():
                    self._follow_device()
        except Exception:  # noqa: BLE001
            log.exception("Sparkplug device birth/death failed")

    def rebirth(self) -> None:
        if self.online.is_set():
            with self._lock:
                self._publish_births()

    def stop(self, timeout: float = 2.0) -> None:
        if not self._started:
            return
        if self._connected:
            with self._lock:
                if self.online.is_set() and self._device_born:
                    self._publish_ddeath()
                info = self._client.publish(self.topics.ndeath, self._ndeath(self._bdseq), qos=1)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish NDEATH: %s", exc)
        self.state = "stopped"
        self.online.clear()
        self._client.disconnect()
        self._client.loop_stop()
        self._started = False

    def _ndeath(self, bdseq: int) -> bytes:
        death = payload(None)
        add_metric(death, self._node_specs[0], bdseq, death.timestamp, birth=True)
        return death.SerializeToString()

    def _set_will(self) -> None:
        will = self._ndeath(self._will_bdseq)
        self._client.will_set(self.topics.ndeath, will, qos=1, retain=False)

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (seq + 1) % SEQ_MODULO
        return seq

    def _publish_births(self) -> None:
        self._seq = 0
        timestamp = now_ms()
        birth = payload(self._next_seq(), timestamp)
        values = {**self._node_values(), BD_SEQ: self._bdseq, REBIRTH: False}
        for spec in self._node_specs:
            add_metric(birth, spec, values.get(spec.name), timestamp, birth=True)
        self._client.publish(self.topics.nbirth, birth.SerializeToString(), qos=0)
        self._device_born = False  # a new NBIRTH leaves every device unborn until its DBIRTH
        self.births += 1
        if self._device_alive():
            self._publish_dbirth(timestamp)
            log.info("Sparkplug NBIRTH/DBIRTH sent (bdSeq %d)", self._bdseq)
        else:
            log.info("Sparkplug NBIRTH sent (bdSeq %d); no DBIRTH: the camera is not acquiring",
                     self._bdseq)

    def _follow_device(self) -> None:
        """DDEATH or DBIRTH where the camera's state no longer matches the device's."""
        alive = self._device_alive()
        if alive and not self._device_born:
            self._publish_dbirth(now_ms())
            log.info("Sparkplug DBIRTH: camera %s is acquiring", self.device_id)
        elif self._device_born and not alive:
            self._publish_data()  # the last values, Camera/State saying why
            self._publish_ddeath()
            self.device_deaths += 1
            log.warning("Sparkplug DDEATH: camera %s is not acquiring (%s)", self.device_id,
                        self._sent.get("Camera/State"))

    def _publish_ddeath(self) -> None:
        death = payload(self._next_seq())
        self._client.publish(self.topics.ddeath, death.SerializeToString(), qos=0)
        self._device_born = False

    def _publish_dbirth(self, timestamp: int) -> None:
        device = payload(self._next_seq(), timestamp)
        values = self._device_values()
        for spec in self._device_specs:
            add_metric(device, spec, values.get(spec.name), timestamp, birth=True)
        self._client.publish(self.topics.dbirth, device.SerializeToString(), qos=0)
        self._sent = {spec.name: values.get(spec.name) for spec in self._device_specs}
        self._device_born = True
        held = self.held.take_all()
        for data in held:  # after the birth that defines their aliases, oldest first
            data.seq = self._next_seq()
            self._client.publish(self.topics.ddata, data.SerializeToString(), qos=0)
        if held:
            log.info("Sparkplug: %d held DDATA sent as historical", len(held))

    def _publish_data(self, hold: bool = False) -> None:
        values = self._device_values()
        changed = [s for s in self._device_specs if values.get(s.name) != self._sent.get(s.name)]
        if not changed:
            return
        timestamp = now_ms()
        data = payload(None if hold else self._next_seq(), timestamp)
        for spec in changed:
            add_metric(data, spec, values.get(spec.name), timestamp, birth=False, historical=hold)
            self._sent[spec.name] = values.get(spec.name)
        if hold:
            self.held.add(data)
        else:
            self._client.publish(self.topics.ddata, data.SerializeToString(), qos=0)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.state = f"refused: {reason_code}"
            log.error("Sparkplug: broker %s:%s refused the connection: %s", self._mqtt.host,
                      self._mqtt.port, reason_code)
            return
        try:
            client.subscribe(self.topics.ncmd, qos=1)
            with self._lock:
                self._connected = True
                self._bdseq = self._will_bdseq  # the will this CONNECT registered
                if self.primary is None:
                    self._publish_births()
                self._will_bdseq = self._bdseq_store.take()  # for the next CONNECT
                self._set_will()
            if self.primary is None:
                self.state = "online"
                self.online.set()
            else:  # its retained STATE arrives right after this subscription
                self.state = f"waiting for primary host {self.primary.host_id}"
                client.subscribe(self.primary.topic, qos=1)
        except Exception:  # noqa: BLE001
            log.exception("Sparkplug birth failed")

    def _on_state(self, client, userdata, message) -> None:
        try:
            online = self.primary.update(message.payload)
            if online is None:
                return
            if online and not self.online.is_set():
                with self._lock:
                    if not self._connected:
                        return
                    self._publish_births()
                    self.online.set()
                self.state = "online"
                log.info("Sparkplug: primary host %s is online", self.primary.host_id)
            elif not online:
                was_live = self.online.is_set()
                self.online.clear()
                self.state = f"primary host {self.primary.host_id} offline: holding data"
                if was_live or not self.births:
                    log.warning("Sparkplug: primary host %s is offline: DDATA is held (up to "
                                "%d) until it returns", self.primary.host_id,
                                self.config.hold_max)
        except Exception:  # noqa: BLE001
            log.exception("Sparkplug STATE handling failed")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.online.clear()
        self._connected = False
        self._device_born = False
        if self.state == "online":
            log.warning("Sparkplug: disconnected from %s:%s: %s", self._mqtt.host,
                        self._mqtt.port, reason_code)
        if self.state != "stopped":
            self.state = f"disconnected: {reason_code}"

    def _on_ncmd(self, client, userdata, message) -> None:
        try:
            command = decode(message.payload)
        except Exception as exc:  # noqa: BLE001 (any garbage from the network)
            log.warning("Sparkplug NCMD on %s: undecodable payload: %s", message.topic, exc)
            return
        rebirth_alias = self._node_specs[1].alias
        for metric in command.metrics:
            named = metric.name == REBIRTH or (not metric.name and metric.alias == rebirth_alias)
            if named and metric_value(metric) is True:
                log.info("Sparkplug NCMD: rebirth requested")
                self.rebirth()
                return
        log.info("Sparkplug NCMD ignored: no %s = true in it", REBIRTH)
