"""OPC UA coil tracking against a real asyncua server on loopback (the L2 simulator)."""

from __future__ import annotations

import subprocess
import sys

from edge.config import parse_config
from tests.fixtures.broker import free_port, wait_until
from tests.fixtures.coils import FedSource, L2OpcUaServer, defect_frame
from tests.fixtures.edge_daemon import daemon_sections, write_config
from tests.fixtures.reliability import running_daemon

DEFECT = (40, 30, 440, 220)


def opcua_sections(tmp_path, broker, model, endpoint, coil_node, speed_node=None):
    tracking = {"source": "opcua", "endpoint": endpoint, "coil_node": coil_node, "timeout": 2.0,
                "reconnect": {"initial": 0.2, "max": 1.0}}
    if speed_node:
        tracking["speed_node"] = speed_node
    return daemon_sections(tmp_path, broker, model, tmp_path, tracking=tracking,
                           geometry={"md_source": "speed"})


def test_opcua_coil_changes_and_a_lost_server(tmp_path, mqtt_broker, mean_model,
                                              mqtt_subscriber):
    server = L2OpcUaServer(free_port(), "X1", speed=2.0)
    source = FedSource()
    sections = opcua_sections(tmp_path, mqtt_broker, mean_model, server.endpoint,
                              server.coil_node, server.speed_node)
    try:
        with running_daemon(parse_config(sections), source=source, lossless=True) as daemon:
            tracker = daemon.tracker
            assert wait_until(lambda: tracker.state == "ok" and tracker.last_coil_id == "X1",
                              timeout=20), tracker.state
            assert tracker.speed_m_s == 2.0
            for _ in range(2):
                source.push(defect_frame([DEFECT]))
            assert wait_until(lambda: daemon.stats.frames_processed == 2)
            server.set_coil("X2")
            assert wait_until(lambda: tracker.last_coil_id == "X2")
            source.push(defect_frame([DEFECT]))
            assert wait_until(lambda: len(mqtt_subscriber.messages("/coils")) == 1)
            server.stop()
            assert wait_until(lambda: tracker.state.startswith("lost"), timeout=20)
            source.push(defect_frame([DEFECT]))  # inspection goes on with the last known coil
            assert wait_until(lambda: daemon.stats.frames_processed == 4)
            assert "tracking lost" in daemon.status_line()
    finally:
        server.stop()
    assert wait_until(lambda: len(mqtt_subscriber.messages("/coils")) == 2)
    events = mqtt_subscriber.payloads("/defects")
    assert [e["coil_id"] for e in events] == ["X1", "X1", "X2", "X2"]
    assert events[-1]["tracking"].startswith("lost")
    assert events[1]["md_m"] > events[0]["md_m"]  # speed 2 m/s integrated over the frame times
    reports = mqtt_subscriber.payloads("/coils")
    assert [(r["coil_id"], r["defects"]["rolled-in scale"]) for r in reports] == \
        [("X1", 2), ("X2", 2)]
    assert reports[1]["tracking"]["ok"] == 1 and reports[1]["tracking"]["lost"] == 1


def test_unreachable_opcua_is_a_state_not_a_hang(tmp_path, mqtt_broker, mean_model):
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/none/"
    source = FedSource()
    sections = opcua_sections(tmp_path, mqtt_broker, mean_model, endpoint, "ns=2;s=Coil.Id")
    with running_daemon(parse_config(sections), source=source, lossless=True) as daemon:
        assert wait_until(lambda: daemon.tracker.state.startswith("lost"), timeout=10)
        source.push(defect_frame([DEFECT]))
        assert wait_until(lambda: daemon.stats.frames_processed == 1)
        assert daemon.stats_message()["tracking_state"].startswith("lost")
    config = write_config(tmp_path / "edge.toml", sections)
    result = subprocess.run([sys.executable, "-m", "edge.cli", "check", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    row = next(line for line in result.stdout.splitlines() if line.startswith("tracking"))
    assert result.returncode == 1 and "FAIL" in row and endpoint in row, result.stdout
