"""The camera as a Sparkplug device that dies and is born again: DDEATH when the camera stops
acquiring, a new DBIRTH when it is back, then DDATA, with one seq counter throughout.

Against the real mosquitto: the daemon with the GenICam source on viky.cti, whose producer the
test takes away (as tests/test_reliability_camera.py does), decoded with the project's schema; a
SparkplugNode whose camera state the test sets, with pysparkplug as the host and with a primary
host that is offline while the camera comes and goes.
"""

from __future__ import annotations

import time

from edge.config import MqttConfig, SiteConfig, parse_config
from edge.delivery.sparkplug import SparkplugNode
from edge.delivery.sparkplug_config import SparkplugConfig
from edge.delivery.sparkplug_payload import decode, metric_value
from tests import test_edge_sparkplug as sparkplug_tests
from tests.fixtures.broker import Subscriber, wait_until
from tests.fixtures.edge_daemon import daemon_sections, frame_with_tiles, write_frames
from tests.fixtures.reliability import running_daemon
from tests.test_edge_sparkplug import publish_state

# the pysparkplug host's fixtures, shared with test_edge_sparkplug.py
host = sparkplug_tests.host
pysparkplug_python = sparkplug_tests.pysparkplug_python


def decoded(subscriber) -> list[tuple[str, object]]:
    """(message type, payload) of every Sparkplug message, in arrival order."""
    return [(m.topic.split("/")[2], decode(m.payload)) for m in subscriber.messages()]


def kinds_of(subscriber) -> list[str]:
    return [m.topic.split("/")[2] for m in subscriber.messages()]


def by_name(payload) -> dict:
    return {m.name: metric_value(m) for m in payload.metrics}


def test_lost_genicam_camera_gives_ddeath_then_dbirth_and_ddata_when_it_returns(
    tmp_path, mqtt_broker, mean_model, viky_cti
):
    producer = tmp_path / "producer" / "viky.cti"
    producer.parent.mkdir()
    producer.symlink_to(viky_cti)
    sections = daemon_sections(tmp_path, mqtt_broker, mean_model, tmp_path,
                               events={"min_score": 0.999})
    sections["camera"] = {
        "type": "genicam", "cti": [str(producer)], "serial": "1", "pixel_format": "Mono8",
        "width": 512, "height": 256, "frame_rate": 30.0, "fetch_timeout": 0.5,
        "reconnect": {"initial": 0.2, "max": 0.8},
    }
    sections["sparkplug"] = {"enabled": True, "group_id": "plant1"}
    raw = Subscriber(mqtt_broker.host, mqtt_broker.port, "spBv1.0/#")
    try:
        with running_daemon(parse_config(sections)) as daemon:
            assert wait_until(lambda: kinds_of(raw)[:3] == ["NBIRTH", "DBIRTH", "DDATA"], 20), \
                (kinds_of(raw), daemon.status_line())
            source = daemon.source
            lost_ms = int(time.time() * 1000)
            with source._device_lock:  # the camera disappears: no producer, handles destroyed
                producer.unlink()
                source._acquirer.destroy()
            assert wait_until(lambda: "DDEATH" in kinds_of(raw), 5), daemon.status_line()
            dead_ms = int(time.time() * 1000)
            time.sleep(1.2)  # dead for a while: a tick or two without DDATA
            dead = kinds_of(raw)
            producer.symlink_to(viky_cti)
            assert wait_until(lambda: kinds_of(raw)[len(dead):len(dead) + 2]
                              == ["DBIRTH", "DDATA"], 10), (kinds_of(raw), daemon.status_line())
            assert daemon.plant.sparkplug.device_deaths == 1
    finally:
        raw.close()
    messages = decoded(raw)
    kinds = [k for k, _ in messages]
    death = kinds.index("DDEATH")
    assert kinds[death - 1] == "DDATA" and dead[death + 1:] == []  # nothing while it is dead
    assert kinds[death + 1:death + 3] == ["DBIRTH", "DDATA"]
    assert kinds.count("NBIRTH") == 1  # the node lived on: no new session, no new NBIRTH
    seqs = [p.seq for k, p in messages if k != "NDEATH"]
    assert seqs == [i % 256 for i in range(len(seqs))], seqs  # DDEATH and DBIRTH counted too
    first_birth, last_data, ddeath, rebirth = (messages[kinds.index("DBIRTH")][1],
                                               messages[death - 1][1], messages[death][1],
                                               messages[death + 1][1])
    aliases = {m.alias: m.name for m in first_birth.metrics}
    assert metric_value(next(m for m in last_data.metrics
                             if aliases[m.alias] == "Camera/State")) == "lost"  # why it died
    assert not ddeath.metrics and lost_ms <= ddeath.timestamp <= dead_ms + 1000
    assert by_name(first_birth)["Camera/State"] == by_name(rebirth)["Camera/State"] == "ok"
    # the new DBIRTH declares every metric again, with the aliases of the first
    assert {m.alias: m.name for m in rebirth.metrics} == aliases
    assert by_name(rebirth)["Frames/In"] > by_name(first_birth)["Frames/In"]
    assert all(m.alias in aliases and not m.name for m in messages[death + 2][1].metrics)


def test_finished_replay_gives_one_ddeath_and_the_clean_stop_no_second_one(
    tmp_path, mqtt_broker, mean_model
):
    images = write_frames(tmp_path / "frames", {
        f"{i}.png": frame_with_tiles([10, 10, 10, 10]) for i in range(5)})
    sections = daemon_sections(tmp_path, mqtt_broker, mean_model, images, camera={"rate": 2})
    sections["sparkplug"] = {"enabled": True, "group_id": "plant1"}
    raw = Subscriber(mqtt_broker.host, mqtt_broker.port, "spBv1.0/#")
    try:
        with running_daemon(parse_config(sections)) as daemon:
            assert wait_until(lambda: "DDEATH" in kinds_of(raw), 15), \
                (kinds_of(raw), daemon.status_line())
            assert daemon.pipeline.source_finished.is_set()
        assert wait_until(lambda: "NDEATH" in kinds_of(raw), 10)
    finally:
        raw.close()
    messages = decoded(raw)
    kinds = [k for k, _ in messages]
    assert kinds[:2] == ["NBIRTH", "DBIRTH"] and kinds[-3:] == ["DDATA", "DDEATH", "NDEATH"]
    assert kinds.count("DDEATH") == 1, kinds
    aliases = {m.alias: m.name for m in messages[1][1].metrics}
    last = {aliases[m.alias]: metric_value(m) for m in messages[-3][1].metrics}
    assert last["Camera/State"] == "finished" and by_name(messages[1][1])["Camera/State"] == "ok"


class Camera:
    """What the node reads: a camera state the test sets and counters that change each tick."""

    def __init__(self) -> None:
        self.alive = True
        self.frames = 0

    def values(self) -> dict:
        return {"Camera/State": "ok" if self.alive else "lost", "Frames/In": self.frames}

    def tick(self, node: SparkplugNode) -> None:
        self.frames += 1
        node.watch_device()
        node.tick()


def camera_node(tmp_path, broker, camera: Camera, **sparkplug) -> SparkplugNode:
    return SparkplugNode(
        SparkplugConfig(enabled=True, **sparkplug), MqttConfig(host=broker.host, port=broker.port),
        SiteConfig(line="L7", camera="camA"), state_dir=tmp_path, class_names=["scratches"],
        node_values=lambda: {"Model/Name": "m"}, device_values=camera.values,
        device_alive=lambda: camera.alive,
    )


def test_pysparkplug_host_sees_the_camera_device_die_and_be_born_again(
    tmp_path, mqtt_broker, host
):
    camera = Camera()
    node = camera_node(tmp_path, mqtt_broker, camera)
    node.start()

    def device_kinds() -> list[str]:
        return [m["type"] for m in host.messages if m.get("device") == "camA"]
    try:
        assert node.online.wait(10)
        camera.tick(node)
        assert wait_until(lambda: device_kinds() == ["DBIRTH", "DDATA"], 10), host.messages
        camera.alive = False
        camera.tick(node)
        camera.tick(node)  # dead: nothing more
        assert wait_until(lambda: device_kinds()[2:] == ["DDATA", "DDEATH"], 10), device_kinds()
        host.send("rebirth L7 steel-inspect-camA")  # while it is dead: an NBIRTH alone
        assert wait_until(lambda: len(host.of("NBIRTH")) == 2, 10)
        camera.alive = True
        camera.tick(node)  # DBIRTH (nothing changed since: no DDATA)
        camera.tick(node)
        assert wait_until(lambda: device_kinds()[4:] == ["DBIRTH", "DDATA"], 10), device_kinds()
    finally:
        node.stop()
    assert wait_until(lambda: host.of("NDEATH"), 10)
    edge = [m for m in host.messages if m["type"][:1] in "ND" and m["type"] != "NCMD"]
    assert [m["type"] for m in edge] == ["NBIRTH", "DBIRTH", "DDATA", "DDATA", "DDEATH",
                                         "NBIRTH", "DBIRTH", "DDATA", "DDEATH", "NDEATH"], edge
    assert [m["seq"] for m in edge[:-1]] == [0, 1, 2, 3, 4, 0, 1, 2, 3]
    ddeath = host.of("DDEATH")[0]
    assert ddeath["metrics"] == {} and ddeath["device"] == "camA" and ddeath["timestamp"] > 0
    rebirth = [m for m in host.messages if m["type"] == "DBIRTH"][1]
    assert rebirth["metrics"]["Camera/State"] == "ok" and rebirth["metrics"]["Frames/In"] == 4
    assert not host.of("DECODE-ERROR"), host.of("DECODE-ERROR")


def test_no_dbirth_while_the_primary_host_is_offline_and_held_data_waits_for_the_camera(
    tmp_path, mqtt_broker
):
    raw = Subscriber(mqtt_broker.host, mqtt_broker.port, "spBv1.0/L7/#")
    t0 = int(time.time() * 1000)
    publish_state(mqtt_broker, "scada1", False, t0)
    camera = Camera()
    node = camera_node(tmp_path, mqtt_broker, camera, primary_host_id="scada1")
    node.start()
    try:
        assert wait_until(lambda: node.state.startswith("primary host scada1 offline"), 10)
        camera.tick(node)  # held
        camera.alive = False
        camera.tick(node)  # dead and the host away: neither sent nor held
        camera.alive = True
        camera.tick(node)  # back, the host still away: held, no DBIRTH
        camera.alive = False
        assert not raw.messages() and len(node.held) == 2
        publish_state(mqtt_broker, "scada1", True, t0 + 1)
        assert wait_until(lambda: kinds_of(raw) == ["NBIRTH"], 10), kinds_of(raw)
        camera.tick(node)  # the camera is dead: no DBIRTH, the held data wait for one
        wait_until(lambda: False, 0.3)
        assert kinds_of(raw) == ["NBIRTH"] and len(node.held) == 2
        camera.alive = True
        camera.tick(node)  # DBIRTH, then the held data
        camera.tick(node)  # live DDATA
        assert wait_until(lambda: kinds_of(raw) == ["NBIRTH", "DBIRTH", "DDATA", "DDATA",
                                                    "DDATA"], 10), kinds_of(raw)
    finally:
        node.stop()
        raw.close()
    messages = decoded(raw)
    assert [p.seq for k, p in messages if k != "NDEATH"][:5] == [0, 1, 2, 3, 4]
    assert by_name(messages[1][1])["Frames/In"] == 5  # the DBIRTH: current values
    frames_in = {m.name: m.alias for m in messages[1][1].metrics}["Frames/In"]
    held = [p for _, p in messages[2:4]]
    assert [metric_value(m) for p in held for m in p.metrics if m.alias == frames_in] == [1, 3]
    assert all(m.is_historical for p in held for m in p.metrics)
    assert not any(m.is_historical for m in messages[4][1].metrics)  # live again
