"""Commands from SCADA over MQTT 5 request/response, against mosquitto with users and an ACL:
an allowed user gets answers that take effect (and survive a restart), a denied one changes
nothing; bad payloads get error answers, never a crash."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.config import load_config
from edge.delivery.sparkplug_payload import decode, metric_value
from edge.observe.monitor import Monitor
from tests.fixtures.broker import Message, free_port, wait_until
from tests.fixtures.edge_daemon import (
    DaemonProcess,
    daemon_sections,
    frame_with_tiles,
    validate_messages,
    write_config,
    write_frames,
)
from tests.test_edge_metrics_endpoint import healthz, scrape

USERS = {"edge": "edge-secret", "scada": "scada-secret", "viewer": "viewer-secret"}
ACL = """
user edge
topic readwrite steel-inspect/L1/cam1/#
topic write scada/responses/#
topic readwrite spBv1.0/#
user scada
topic write steel-inspect/L1/cam1/cmd/#
topic read scada/responses/#
topic read steel-inspect/#
topic read spBv1.0/#
user viewer
topic read steel-inspect/#
topic readwrite viewer/#
"""
CMD = "steel-inspect/L1/cam1/cmd/"
DEFECTS = "steel-inspect/L1/cam1/defects"


@pytest.fixture
def acl_broker(tmp_path, make_broker):
    passwd = shutil.which("mosquitto_passwd")
    if passwd is None:
        pytest.skip("mosquitto_passwd is not installed")
    users = tmp_path / "mosquitto.passwd"
    for i, (user, secret) in enumerate(USERS.items()):
        flags = ["-b", "-c"] if i == 0 else ["-b"]
        subprocess.run([passwd, *flags, str(users), user, secret], check=True,
                       capture_output=True)
    acl = tmp_path / "mosquitto.acl"
    acl.write_text(ACL)
    return make_broker(extra_config=f"allow_anonymous false\npassword_file {users}\n"
                                    f"acl_file {acl}\n")


class Requester:
    """An MQTT 5 client sending commands with a response topic and correlation data."""

    def __init__(self, broker, user: str, response_topic: str) -> None:
        self.response_topic = response_topic
        self.responses: dict[bytes, dict] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self._client.username_pw_set(user, USERS[user])
        self._client.on_connect = lambda c, *a: (c.subscribe(response_topic, qos=1),
                                                 self._ready.set())
        self._client.on_message = self._on_message
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        assert self._ready.wait(10)

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.responses[message.properties.CorrelationData] = json.loads(message.payload)

    def send(self, name: str, body, correlation: bytes) -> None:
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic, props.CorrelationData = self.response_topic, correlation
        payload = body if isinstance(body, bytes) else json.dumps(body)
        self._client.publish(CMD + name, payload, qos=1, properties=props).wait_for_publish(5)

    def answer(self, correlation: bytes, timeout: float = 30.0):
        wait_until(lambda: correlation in self.responses, timeout)
        return self.responses.get(correlation)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def commanded_daemon_sections(tmp_path, acl_broker, mean_model) -> dict:
    """A looping replay daemon logged in as the ACL broker's `edge` user, commands enabled."""
    images = write_frames(tmp_path / "frames",
                          {f"{i}.png": frame_with_tiles([200]) for i in range(3)})
    secret = tmp_path / "edge-password"
    secret.write_text(USERS["edge"] + "\n")
    secret.chmod(0o600)
    sections = daemon_sections(tmp_path, acl_broker, mean_model, images,
                               camera={"rate": 10, "loop": True},
                               mqtt={"username": "edge", "password_file": str(secret)})
    sections["commands"] = {"enabled": True}
    return sections


def test_allowed_user_commands_take_effect_denied_user_changes_nothing(
    tmp_path, acl_broker, mean_model
):
    sections = commanded_daemon_sections(tmp_path, acl_broker, mean_model)
    config = write_config(tmp_path / "edge.toml", sections)
    events = Tap(acl_broker, "scada", [DEFECTS])
    daemon = DaemonProcess(config)
    scada = Requester(acl_broker, "scada", "scada/responses/1")
    viewer = Requester(acl_broker, "viewer", "viewer/responses")
    state = tmp_path / "state" / "thresholds.json"
    try:
        assert wait_until(lambda: "commands: listening" in daemon.log, 30), daemon.log
        # the grey-200 tile scores 200/255 = 0.784 for class 1: a defect at 0.5, none at 0.9
        assert wait_until(lambda: events.messages(), 20)
        scada.send("set-thresholds", {"thresholds": {"rolled-in scale": 0.9}, "by": "op1"}, b"1")
        answer = scada.answer(b"1")
        assert answer and answer["ok"], answer
        assert answer["result"]["thresholds"]["rolled-in scale"] == pytest.approx(0.9)
        assert json.loads(state.read_text()) == {"thresholds": {"rolled-in scale": 0.9}}
        count = len(events.messages())
        wait_until(lambda: False, 1.5)  # frames keep coming; none is a defect any more
        assert len(events.messages()) <= count + 1  # at most one frame in flight

        viewer.send("clear-thresholds", {}, b"v")  # the ACL drops it: nothing applied
        assert viewer.answer(b"v", timeout=2) is None
        assert json.loads(state.read_text()) == {"thresholds": {"rolled-in scale": 0.9}}

        scada.send("set-thresholds", {"thresholds": {"no such class": 0.5}}, b"2")
        assert "unknown class" in scada.answer(b"2")["error"]
        scada.send("set-thresholds", {"thresholds": {"scratches": 1.5}}, b"3")
        assert "between 0 and 1" in scada.answer(b"3")["error"]
        scada.send("coil", b"{not json", b"4")
        assert "not JSON" in scada.answer(b"4")["error"]
        scada.send("coil", {"coil_id": "C-4711"}, b"5")
        assert scada.answer(b"5")["result"] == {"coil_id": "C-4711"}
        scada.send("reload-model", {}, b"6")
        assert scada.answer(b"6")["result"]["reloading"].endswith("model.onnx")
        scada.send("warp-drive", {}, b"7")
        assert "unknown command" in scada.answer(b"7")["error"]
        assert daemon.process.poll() is None  # still inspecting
        assert "command set-thresholds (by op1)" in daemon.log

        daemon.stop()  # kill; the overrides are on disk
        daemon = DaemonProcess(config)
        assert wait_until(lambda: "thresholds set by command restored" in daemon.log, 30), \
            daemon.log
        # restored before the command client subscribes: a command sent earlier finds nobody
        assert wait_until(lambda: "commands: listening" in daemon.log, 30), daemon.log
        scada.send("clear-thresholds", {}, b"8")
        answer = scada.answer(b"8", timeout=20)
        assert answer["ok"] and answer["result"]["set_by_command"] == {}
        assert answer["result"]["thresholds"]["rolled-in scale"] == pytest.approx(0.5)
        assert json.loads(state.read_text()) == {"thresholds": {}}
    finally:
        daemon.stop()
        scada.close()
        viewer.close()
        events.close()


class Tap:
    """Every message on `topics`, as an authenticated user, kept raw."""

    def __init__(self, broker, user: str, topics: list[str]) -> None:
        self._messages: list[Message] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2)
        self._client.username_pw_set(user, USERS[user])
        self._client.on_connect = lambda c, *a: (c.subscribe([(t, 1) for t in topics]),
                                                 ready.set())
        self._client.on_message = self._on_message
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        assert ready.wait(10)

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self._messages.append(Message(message.topic, message.payload, bool(message.retain)))

    def messages(self, contains: str = "") -> list[Message]:
        with self._lock:
            return [m for m in self._messages if contains in m.topic]

    def last(self, suffix: str) -> dict | None:
        found = [m for m in self.messages() if m.topic.endswith(suffix)]
        return found[-1].json() if found else None

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def sparkplug_paused_values(tap: Tap) -> list:
    """Inspection/Paused in every DBIRTH and DDATA, in order (aliases from the DBIRTH)."""
    values, alias = [], None
    for message in tap.messages("spBv1.0/"):
        payload = decode(message.payload)
        if "/DBIRTH/" in message.topic:
            alias = {m.name: m.alias for m in payload.metrics}["Inspection/Paused"]
        if "/DBIRTH/" in message.topic or "/DDATA/" in message.topic:
            values += [metric_value(m) for m in payload.metrics if m.alias == alias]
    return values


def test_pause_stops_inspection_visibly_and_a_restart_inspects_again(
    tmp_path, acl_broker, mean_model
):
    port = free_port()
    sections = commanded_daemon_sections(tmp_path, acl_broker, mean_model)
    sections["metrics"] = {"enabled": True, "listen": f"127.0.0.1:{port}",
                           "healthy_frame_age": 2.0}
    sections["sparkplug"] = {"enabled": True, "group_id": "plant1"}
    config = write_config(tmp_path / "edge.toml", sections)
    tap = Tap(acl_broker, "scada", ["steel-inspect/L1/cam1/#", "spBv1.0/#"])
    daemon = DaemonProcess(config)
    scada = Requester(acl_broker, "scada", "scada/responses/p")
    monitor = Monitor(load_config(config))  # `edge monitor`, as the daemon's user
    monitor.start()
    labels = frozenset({("line", "L1"), ("camera", "cam1")})

    def metric(name: str) -> float:
        return scrape(port)[(f"steel_inspect_{name}", labels)]
    try:
        assert wait_until(lambda: healthz(port)[0] == 200, 30), daemon.log
        assert wait_until(lambda: "commands: listening" in daemon.log, 10), daemon.log
        scada.send("pause", {"by": "op1", "reason": "roll change"}, b"p1")
        answer = scada.answer(b"p1")
        assert answer["ok"] and answer["result"]["inspection"]["state"] == "paused", answer
        assert answer["result"]["inspection"]["by"] == "op1"
        # retained; the answer comes over the command client's own connection, so the status
        # (the daemon's connection) may arrive just after it
        assert wait_until(lambda: tap.last("/status")["inspection"]
                          == answer["result"]["inspection"], 5), tap.last("/status")
        wait_until(lambda: False, 0.6)  # frames queued before the pause are finished
        processed = metric("frames_processed_total")
        paused_before = metric("frames_paused_total")
        wait_until(lambda: False, 1.0)
        assert metric("frames_processed_total") == processed  # nothing inspected
        assert metric("frames_paused_total") >= paused_before + 5  # 10 fps still acquired
        assert metric("inspection_paused") == 1
        code, reason = healthz(port)
        assert code == 503 and "paused by op1" in reason, (code, reason)
        assert wait_until(lambda: tap.last("/stats")["inspection"] == "paused")
        assert tap.last("/stats")["frames_paused"] > 0
        assert wait_until(lambda: True in sparkplug_paused_values(tap), 5)
        assert "INSPECTION PAUSED by op1 (roll change)" in daemon.log
        assert wait_until(lambda: "INSPECTION PAUSED by op1" in monitor.summary_line(), 5)

        scada.send("resume", {"by": "op1"}, b"r1")
        assert scada.answer(b"r1")["result"]["inspection"] == {"state": "running"}
        assert wait_until(lambda: metric("frames_processed_total") > processed + 3, 10)
        assert metric("inspection_paused") == 0
        assert wait_until(lambda: healthz(port)[0] == 200, 5)
        assert wait_until(lambda: tap.last("/status")["inspection"] == {"state": "running"}, 5)
        assert wait_until(lambda: sparkplug_paused_values(tap)[-1] is False, 5)
        assert wait_until(lambda: "PAUSED" not in monitor.summary_line(), 5)

        scada.send("pause", {"by": "op2"}, b"p2")  # paused when it stops
        assert scada.answer(b"p2")["ok"]
        wait_until(lambda: False, 0.5)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, daemon.log
        assert wait_until(lambda: tap.last("/coils") is not None, 10)
        report = tap.last("/coils")
        frames = report["frames"]
        assert frames["paused"] >= paused_before + 5
        assert frames["in"] == (frames["processed"] + frames["failed"] + frames["paused"]
                                + frames["dropped"])
        assert report["coverage"] == pytest.approx(frames["processed"] / frames["in"], abs=1e-6)
        assert report["coverage"] < 1

        daemon = DaemonProcess(config)  # a pause does not survive a restart: said loudly
        assert wait_until(lambda: "INSPECTION WAS PAUSED" in daemon.log, 30), daemon.log
        assert wait_until(lambda: healthz(port)[0] == 200, 30), daemon.log
        assert metric("inspection_paused") == 0
        assert validate_messages(tap.messages("steel-inspect/"))["status"] >= 5
    finally:
        daemon.stop()
        scada.close()
        tap.close()
        monitor.close()
