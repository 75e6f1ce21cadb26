"""Sparkplug B edge node against a host nobody here wrote (pysparkplug, in its own venv with the
paho-mqtt<2 it needs), plus decoding with the project's own compiled schema."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import MqttConfig, SiteConfig
from edge.delivery.sparkplug import SparkplugNode
from edge.delivery.sparkplug_config import SparkplugConfig
from edge.delivery.sparkplug_metrics import device_metrics, node_metrics
from edge.delivery.sparkplug_payload import DataType, decode, metric_value
from tests.fixtures.broker import Subscriber, wait_until
from tests.fixtures.edge_daemon import (
    DaemonProcess,
    daemon_sections,
    frame_with_tiles,
    write_config,
    write_frames,
)

ROOT = Path(__file__).resolve().parents[1]
HOST_VENV = ROOT / ".test-cache" / "pysparkplug-venv"
HOST_SCRIPT = ROOT / "tests" / "fixtures" / "sparkplug_host.py"


@pytest.fixture(scope="session")
def pysparkplug_python() -> Path:
    """python of a cached venv holding pysparkplug and paho-mqtt<2 (never the project's venv)."""
    python = HOST_VENV / "bin" / "python"
    probe = [str(python), "-c", "import pysparkplug, paho.mqtt"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(HOST_VENV)], check=True,
                       capture_output=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "pysparkplug",
                        "paho-mqtt<2"], check=True, capture_output=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        output = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"cannot install pysparkplug into {HOST_VENV}: {output[-300:]!r}")
    return python


class Host:
    """The pysparkplug host as a child process; decoded messages arrive as dicts."""

    def __init__(self, python: Path, broker) -> None:
        self.process = subprocess.Popen(
            [str(python), str(HOST_SCRIPT), broker.host, str(broker.port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.messages: list[dict] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not wait_until(lambda: self.of("HOST-CONNECTED"), 20):
            self.close()
            raise RuntimeError(f"pysparkplug host did not connect: {self.process.stderr.read()}")

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._lock:
                self.messages.append(json.loads(line))

    def of(self, kind: str) -> list[dict]:
        with self._lock:
            return [m for m in self.messages if m["type"] == kind]

    def send(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def host(pysparkplug_python, mqtt_broker):
    peer = Host(pysparkplug_python, mqtt_broker)
    yield peer
    peer.close()


def sparkplug_daemon_config(tmp_path, broker, model) -> Path:
    images = write_frames(tmp_path / "frames", {
        f"{i:03d}.png": frame_with_tiles([255, 130, 10, 0]) for i in range(4)
    })
    sections = daemon_sections(tmp_path, broker, model, images,
                               camera={"rate": 20, "loop": True})
    sections["mqtt"]["keepalive"] = 5
    sections["sparkplug"] = {"enabled": True, "group_id": "plant1", "data_interval": 1.0}
    return write_config(tmp_path / "edge.toml", sections)


def test_pysparkplug_host_sees_births_data_rebirth_and_death_after_kill(
    tmp_path, mqtt_broker, mean_model, host
):
    raw = Subscriber(mqtt_broker.host, mqtt_broker.port, "spBv1.0/#")
    config = sparkplug_daemon_config(tmp_path, mqtt_broker, mean_model)
    started_ms = int(time.time() * 1000)
    daemon = DaemonProcess(config)
    try:
        assert wait_until(lambda: host.of("DDATA") and len(host.of("DDATA")) >= 3, 60), daemon.log
        nbirth, dbirth = host.of("NBIRTH")[0], host.of("DBIRTH")[0]
        node = "steel-inspect-cam1"
        assert (nbirth["group"], nbirth["node"], nbirth["device"]) == ("plant1", node, None)
        assert (dbirth["node"], dbirth["device"]) == (node, "cam1")
        assert nbirth["seq"] == 0 and dbirth["seq"] == 1
        assert isinstance(nbirth["bdSeq"], int)
        assert nbirth["metrics"]["Node Control/Rebirth"] is False
        assert nbirth["metrics"]["Model/Name"] == "mean-model"
        # every metric has a distinct alias across node and device
        aliases = list(nbirth["aliases"].values()) + list(dbirth["aliases"].values())
        assert None not in aliases and len(set(aliases)) == len(aliases)
        assert dbirth["metrics"]["Coil/Id"] is None  # no coil tracking yet: null, declared
        assert dbirth["datatypes"]["Frames/Processed"] == "UINT64"
        data = host.of("DDATA")
        seqs = [m["seq"] for m in [dbirth, *data]]
        assert seqs == list(range(1, len(seqs) + 1)), seqs  # one counter, no gap
        now_ms = int(time.time() * 1000)
        for message in [nbirth, dbirth, *data]:
            assert started_ms - 1000 <= message["timestamp"] <= now_ms + 1000  # ms, UTC epoch
        processed = [m["metrics"]["Frames/Processed"] for m in data
                     if "Frames/Processed" in m["metrics"]]
        assert processed == sorted(processed) and processed[-1] > 0
        # pysparkplug resolved aliases to names: the DDATA itself carries none (by alias only)
        ddata_raw = [m for m in raw.messages("/cam1") if "/DDATA/" in m.topic]
        assert ddata_raw and all(not metric.name for metric in decode(ddata_raw[0].payload).metrics)
        assert "Last Defect/Class" in dbirth["metrics"]

        # NCMD Node Control/Rebirth from the host -> a new NBIRTH (seq 0, same bdSeq) and DBIRTH
        host.send(f"rebirth plant1 {node}")
        assert wait_until(lambda: len(host.of("NBIRTH")) >= 2 and len(host.of("DBIRTH")) >= 2, 20)
        rebirth = host.of("NBIRTH")[1]
        assert rebirth["seq"] == 0 and rebirth["bdSeq"] == nbirth["bdSeq"]

        # kill -9: the broker publishes the will, an NDEATH whose bdSeq matches the NBIRTH's
        daemon.signal(signal.SIGKILL)
        daemon.wait(10)
        assert wait_until(lambda: host.of("NDEATH"), 20)
        death = host.of("NDEATH")[0]
        assert death["node"] == node and death["bdSeq"] == nbirth["bdSeq"]

        # the restarted daemon is a new session: a new bdSeq, so a late old NDEATH can't match
        daemon = DaemonProcess(config)
        assert wait_until(lambda: len(host.of("NBIRTH")) >= 3, 60), daemon.log
        assert host.of("NBIRTH")[2]["bdSeq"] != nbirth["bdSeq"]
        assert not host.of("DECODE-ERROR"), host.of("DECODE-ERROR")
    finally:
        daemon.stop()
        raw.close()


def test_seq_wraps_after_255_and_clean_stop_sends_ddeath_and_ndeath(tmp_path, mqtt_broker):
    """Own schema decoding; values change on every tick so each tick is one DDATA."""
    raw = Subscriber(mqtt_broker.host, mqtt_broker.port, "spBv1.0/#")
    counter = {"n": 0}
    node = SparkplugNode(
        SparkplugConfig(enabled=True), MqttConfig(host=mqtt_broker.host, port=mqtt_broker.port),
        SiteConfig(line="L7", camera="camA"), state_dir=tmp_path, class_names=["scratches"],
        node_values=lambda: {"Model/Name": "m"},
        device_values=lambda: {"Frames/In": counter["n"], "Frames/FPS": float("nan")},
    )
    node.start()
    try:
        assert node.online.wait(10)
        for n in range(1, 301):
            counter["n"] = n
            node.tick()
        assert wait_until(lambda: len([m for m in raw.messages() if "/DDATA/" in m.topic]) == 300)
    finally:
        node.stop()
    assert wait_until(lambda: any("/NDEATH/" in m.topic for m in raw.messages()), 10)
    by_kind = {}
    for message in raw.messages():
        by_kind.setdefault(message.topic.split("/")[2], []).append(
            (message.topic, decode(message.payload)))
    topic, birth = by_kind["NBIRTH"][0]
    assert topic == "spBv1.0/L7/NBIRTH/steel-inspect-camA" and birth.seq == 0
    dbirth = by_kind["DBIRTH"][0][1]
    names = {m.name: m for m in dbirth.metrics}
    assert names["Frames/FPS"].is_null and names["Frames/FPS"].datatype == DataType.Double
    assert names["Defects/scratches"].is_null  # absent from the snapshot: declared, null
    seqs = [payload.seq for _, payload in by_kind["DDATA"]]
    assert seqs == [(2 + i) % 256 for i in range(300)]  # 2..255, 0, 1, ... (births were 0, 1)
    values = [metric_value(payload.metrics[0]) for _, payload in by_kind["DDATA"]]
    assert values == list(range(1, 301))
    alias = names["Frames/In"].alias
    assert all(p.metrics[0].alias == alias and not p.metrics[0].name for _, p in by_kind["DDATA"])
    ddeath = by_kind["DDEATH"][0]
    assert ddeath[0] == "spBv1.0/L7/DDEATH/steel-inspect-camA/camA" and ddeath[1].seq == 302 % 256
    ndeath = by_kind["NDEATH"][0][1]
    bdseq = {m.name: metric_value(m) for m in birth.metrics}["bdSeq"]
    assert [(m.name, metric_value(m)) for m in ndeath.metrics] == [("bdSeq", bdseq)]
    assert not ndeath.HasField("seq")
    raw.close()


def publish_state(broker, host_id: str, online: bool, timestamp_ms: int) -> None:
    """The primary host's side: a retained QoS 1 STATE, as Sparkplug 3.0 hosts publish it."""
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.connect(broker.host, broker.port)
    client.loop_start()
    body = json.dumps({"online": online, "timestamp": timestamp_ms})
    client.publish(f"spBv1.0/STATE/{host_id}", body, qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_primary_host_offline_holds_ddata_and_sends_it_as_historical_after_the_birth(
    tmp_path, mqtt_broker
):
    raw = Subscriber(mqtt_broker.host, mqtt_broker.port, "spBv1.0/L7/#")
    counter = {"n": 0}
    t0 = int(time.time() * 1000)
    publish_state(mqtt_broker, "scada1", False, t0)  # the host's will, retained
    node = SparkplugNode(
        SparkplugConfig(enabled=True, primary_host_id="scada1", hold_max=3),
        MqttConfig(host=mqtt_broker.host, port=mqtt_broker.port),
        SiteConfig(line="L7", camera="camA"), state_dir=tmp_path, class_names=["scratches"],
        node_values=lambda: {"Model/Name": "m"},
        device_values=lambda: {"Frames/In": counter["n"]},
    )

    def kinds():
        return [m.topic.split("/")[2] for m in raw.messages()]

    def tick(n: int) -> None:
        counter["n"] = n
        node.tick()
        time.sleep(0.01)  # distinct metric timestamps

    node.start()
    try:
        assert wait_until(lambda: node.state.startswith("primary host scada1 offline"), 10), \
            node.state
        for n in (1, 2):
            tick(n)
        assert not raw.messages() and len(node.held) == 2  # no birth, no data: held
        back_ms = int(time.time() * 1000)
        publish_state(mqtt_broker, "scada1", True, t0 + 1)
        assert wait_until(lambda: kinds() == ["NBIRTH", "DBIRTH", "DDATA", "DDATA"], 10), kinds()
        tick(3)  # live again
        assert wait_until(lambda: kinds().count("DDATA") == 3)

        publish_state(mqtt_broker, "scada1", False, t0 + 2)  # host gone again
        assert wait_until(lambda: not node.online.is_set())
        for n in (4, 5, 6, 7):  # four held, the limit is 3: the oldest is dropped, counted
            tick(n)
        publish_state(mqtt_broker, "scada1", True, t0 + 1)  # stale (older): ignored
        wait_until(lambda: False, 0.5)
        assert kinds().count("NBIRTH") == 1 and len(node.held) == 3 and node.held.dropped == 1
        publish_state(mqtt_broker, "scada1", True, t0 + 3)
        assert wait_until(lambda: kinds().count("DDATA") == 6, 10), kinds()
    finally:
        node.stop()
    decoded = [(m.topic.split("/")[2], decode(m.payload)) for m in raw.messages()]
    assert [k for k, _ in decoded][:9] == ["NBIRTH", "DBIRTH", "DDATA", "DDATA", "DDATA",
                                           "NBIRTH", "DBIRTH", "DDATA", "DDATA"]
    assert [p.seq for _, p in decoded[:9]] == [0, 1, 2, 3, 4, 0, 1, 2, 3]
    data = [p for k, p in decoded if k == "DDATA"]
    first_held, second_held, live, *later = data
    # the first held message carries every metric (nothing was sent before); Frames/In is 1
    by_alias = {m.alias: m for m in first_held.metrics}
    alias = {m.name: m.alias for m in decoded[1][1].metrics}["Frames/In"]
    assert metric_value(by_alias[alias]) == 1 and all(m.is_historical for m in first_held.metrics)
    assert [metric_value(m) for m in second_held.metrics] == [2]
    assert all(m.is_historical for m in second_held.metrics)
    assert first_held.metrics[0].timestamp < second_held.metrics[0].timestamp < back_ms
    assert [metric_value(m) for m in live.metrics] == [3] and not live.metrics[0].is_historical
    assert [metric_value(p.metrics[0]) for p in later] == [5, 6, 7]  # 4 was dropped
    assert all(p.metrics[0].is_historical for p in later)
    dbirth2 = {m.name: metric_value(m) for m in decoded[6][1].metrics}
    assert dbirth2["Frames/In"] == 7  # the birth has the current value, history follows
    raw.close()


def test_pysparkplug_primary_host_gets_the_birth_when_online_then_the_held_data_as_historical(
    tmp_path, mqtt_broker, mean_model, host
):
    host.send("state pyhost offline")
    assert wait_until(lambda: host.of("STATE-SENT"), 10)
    config = sparkplug_daemon_config(tmp_path, mqtt_broker, mean_model)
    with open(config, "a") as toml:  # [sparkplug] is the last section
        toml.write('primary_host_id = "pyhost"\n')
    daemon = DaemonProcess(config)
    try:
        assert wait_until(lambda: "waiting for primary host" in daemon.log
                          or "primary host pyhost is offline" in daemon.log, 30), daemon.log
        wait_until(lambda: False, 3.0)  # about three DDATA held, one a second
        assert not host.of("NBIRTH") and not host.of("DDATA")
        online_ms = int(time.time() * 1000)
        host.send("state pyhost online")
        assert wait_until(lambda: host.of("NBIRTH") and len(host.of("DDATA")) >= 3, 20), \
            daemon.log
        historical = [m for m in host.of("DDATA") if all(m["historical"].values())]
        assert historical, host.of("DDATA")
        assert all(t < online_ms for m in historical for t in m["timestamps"].values())
        assert any("Frames/Processed" in m["metrics"] for m in historical)
        wait_until(lambda: False, 1.5)
        live = host.of("DDATA")[len(historical):]
        assert live and not any(any(m["historical"].values()) for m in live)  # live again
        assert not host.of("DECODE-ERROR"), host.of("DECODE-ERROR")
    finally:
        daemon.stop()


def test_metrics_added_later_keep_the_documented_aliases_of_the_earlier_ones():
    names = ["crazing", "pitted", "scratches"]
    node = node_metrics()
    aliases = {m.name: m.alias for m in device_metrics(names, len(node) + 1)}
    assert len(node) == 8 and aliases["Camera/State"] == 9 and aliases["Model/Version"] == 29
    assert [aliases[f"Defects/{n}"] for n in names] == [30, 31, 32]  # as before the new ones
    assert [aliases[f"Coil/Defects/{n}"] for n in names] == [33, 34, 35]
    assert [aliases[n] for n in ("Inspection/Paused", "Frames/Paused", "Outbox/Oldest Age s")] \
        == [36, 37, 38]  # 30+2N...
