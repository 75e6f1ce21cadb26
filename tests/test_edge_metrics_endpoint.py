"""The Prometheus endpoint scraped while a replay runs: its counters equal the daemon's own
stats message and defect events; /healthz follows frames and the broker."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.broker import free_port, wait_until
from tests.fixtures.edge_daemon import (
    CLASS_NAMES,
    DaemonProcess,
    daemon_sections,
    frame_with_tiles,
    write_config,
    write_frames,
)

FRAMES = 24
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def scrape(port: int) -> dict:
    """{(name, frozenset(labels)): value} of one /metrics scrape."""
    text = _direct.open(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


def healthz(port: int) -> tuple[int, str]:
    try:
        response = _direct.open(f"http://127.0.0.1:{port}/healthz", timeout=5)
        return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except urllib.error.URLError as error:  # not listening (yet)
        return 0, str(error.reason)


def test_scraped_counters_equal_the_daemons_summary(tmp_path, mqtt_broker, mqtt_subscriber,
                                                   mean_model):
    values = [255, 130, 10, 0]  # classes 1+2, class 1, nothing, nothing
    images = write_frames(tmp_path / "frames", {
        f"{i:03d}.png": frame_with_tiles(values[i % 4:] + values[:i % 4]) for i in range(FRAMES)
    })
    port = free_port()
    sections = daemon_sections(tmp_path, mqtt_broker, mean_model, images, camera={"rate": 8})
    sections["metrics"] = {"enabled": True, "listen": f"127.0.0.1:{port}",
                           "healthy_frame_age": 2.0}
    daemon = DaemonProcess(write_config(tmp_path / "edge.toml", sections))
    labels = {("line", "L1"), ("camera", "cam1")}
    try:
        assert wait_until(lambda: healthz(port)[0] == 200, 30), daemon.log
        during = scrape(port)  # mid-replay
        processed_mid = during[("steel_inspect_frames_processed_total", frozenset(labels))]
        assert 0 < processed_mid < FRAMES

        def final_stats():
            stats = mqtt_subscriber.payloads("/stats")
            return stats and stats[-1]["frames_processed"] == FRAMES and stats[-1]
        assert wait_until(final_stats, 30), daemon.log
        summary = final_stats()
        metrics = scrape(port)

        def value(metric, **extra):
            return metrics[(metric, frozenset(labels | set(extra.items())))]
        assert value("steel_inspect_frames_processed_total") == summary["frames_processed"]
        assert value("steel_inspect_frames_received_total") == summary["frames_in"] == FRAMES
        assert value("steel_inspect_frames_dropped_total") == summary["frames_dropped"]
        assert value("steel_inspect_events_total") == summary["events"]
        assert value("steel_inspect_outbox_depth") == summary["outbox_depth"]
        events = mqtt_subscriber.payloads("/defects")
        assert wait_until(lambda: len(mqtt_subscriber.payloads("/defects")) == summary["events"])
        events = mqtt_subscriber.payloads("/defects")
        for name in CLASS_NAMES:
            tiles = sum(d["class_name"] == name for e in events for d in e["defects"])
            assert value("steel_inspect_defects_total", **{"class": name}) == tiles
        assert value("steel_inspect_inference_seconds_count") == FRAMES
        assert value("steel_inspect_inference_seconds_bucket", le="+Inf") == FRAMES
        assert 0 < value("steel_inspect_inference_seconds_sum") < FRAMES * 5
        assert value("steel_inspect_broker_state", state="connected") == 1
        assert value("steel_inspect_model_info", name="mean-model", version="test-1",
                     sha256=events[0]["model"]["sha256"], backend="onnxruntime") == 1
        assert value("steel_inspect_tracking_state", state="none") == 1  # no L2 tracking
        # the replay is over: no frames any more -> unhealthy, with the reason
        assert wait_until(lambda: healthz(port)[0] == 503, 10)
        assert "no frame processed for" in healthz(port)[1]
    finally:
        daemon.stop()


def test_outbox_oldest_age_grows_while_the_broker_is_down(tmp_path, mqtt_broker, mean_model):
    images = write_frames(tmp_path / "frames",
                          {f"{i}.png": frame_with_tiles([255]) for i in range(3)})
    port = free_port()
    sections = daemon_sections(tmp_path, mqtt_broker, mean_model, images,
                               camera={"rate": 10, "loop": True})
    sections["metrics"] = {"enabled": True, "listen": f"127.0.0.1:{port}"}
    daemon = DaemonProcess(write_config(tmp_path / "edge.toml", sections))
    labels = frozenset({("line", "L1"), ("camera", "cam1")})

    def gauge(name: str) -> float:
        return scrape(port)[(f"steel_inspect_{name}", labels)]
    try:
        assert wait_until(lambda: healthz(port)[0] == 200, 30), daemon.log
        assert gauge("outbox_oldest_age_seconds") < 1.0  # acknowledged as they come
        mqtt_broker.stop()
        assert wait_until(lambda: gauge("outbox_depth") >= 5, 10)
        first, depth = gauge("outbox_oldest_age_seconds"), gauge("outbox_depth")
        wait_until(lambda: False, 1.5)
        later = gauge("outbox_oldest_age_seconds")
        assert later == pytest.approx(first + 1.5, abs=0.5)  # the same oldest event, waiting
        assert gauge("outbox_depth") > depth
        mqtt_broker.start()
        assert wait_until(lambda: gauge("outbox_oldest_age_seconds") < 1.0, 20), daemon.log
    finally:
        daemon.stop()
