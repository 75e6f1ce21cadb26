"""Commands from SCADA over MQTT 5 request/response, against mosquitto with users and an ACL:
an allowed user gets answers that take effect (and survive a restart), a denied one changes
nothing; bad payloads get error answers, never a crash."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.fixtures.broker import wait_until
from tests.fixtures.edge_daemon import (
    DaemonProcess,
    daemon_sections,
    frame_with_tiles,
    write_config,
    write_frames,
)

USERS = {"edge": "edge-secret", "scada": "scada-secret", "viewer": "viewer-secret"}
ACL = """
user edge
topic readwrite steel-inspect/L1/cam1/#
topic write scada/responses/#
user scada
topic write steel-inspect/L1/cam1/cmd/#
topic read scada/responses/#
topic read steel-inspect/#
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

    def answer(self, correlation: bytes, timeout: float = 10.0):
        wait_until(lambda: correlation in self.responses, timeout)
        return self.responses.get(correlation)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def test_allowed_user_commands_take_effect_denied_user_changes_nothing(
    tmp_path, acl_broker, mean_model
):
    images = write_frames(tmp_path / "frames",
                          {f"{i}.png": frame_with_tiles([200]) for i in range(3)})
    secret = tmp_path / "edge-password"
    secret.write_text(USERS["edge"] + "\n")
    secret.chmod(0o600)
    sections = daemon_sections(tmp_path, acl_broker, mean_model, images,
                               camera={"rate": 10, "loop": True},
                               mqtt={"username": "edge", "password_file": str(secret)})
    sections["commands"] = {"enabled": True}
    config = write_config(tmp_path / "edge.toml", sections)
    events = EventsTap(acl_broker, "scada")
    daemon = DaemonProcess(config)
    scada = Requester(acl_broker, "scada", "scada/responses/1")
    viewer = Requester(acl_broker, "viewer", "viewer/responses")
    state = tmp_path / "state" / "thresholds.json"
    try:
        assert wait_until(lambda: "commands: listening" in daemon.log, 30), daemon.log
        # the grey-200 tile scores 200/255 = 0.784 for class 1: a defect at 0.5, none at 0.9
        assert wait_until(lambda: events.count(), 20)
        scada.send("set-thresholds", {"thresholds": {"rolled-in scale": 0.9}, "by": "op1"}, b"1")
        answer = scada.answer(b"1")
        assert answer and answer["ok"], answer
        assert answer["result"]["thresholds"]["rolled-in scale"] == pytest.approx(0.9)
        assert json.loads(state.read_text()) == {"thresholds": {"rolled-in scale": 0.9}}
        count = events.count()
        wait_until(lambda: False, 1.5)  # frames keep coming; none is a defect any more
        assert events.count() <= count + 1  # at most one frame in flight

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


class EventsTap:
    """The defect events, read as an authenticated user."""

    def __init__(self, broker, user: str) -> None:
        self._events: list[dict] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2)
        self._client.username_pw_set(user, USERS[user])
        self._client.on_connect = lambda c, *a: (c.subscribe(DEFECTS, qos=1), ready.set())
        self._client.on_message = self._on_message
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        assert ready.wait(10)

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self._events.append(json.loads(message.payload))

    def count(self) -> int:
        with self._lock:
            return len(self._events)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
