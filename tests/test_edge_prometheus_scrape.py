"""Debian's prometheus server scrapes the daemon's /metrics during a replay (its parser, not
ours): the series arrive with the line/camera labels and the target is up."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.parse

import pytest

from tests.fixtures.broker import free_port, wait_until
from tests.fixtures.edge_daemon import (
    DaemonProcess,
    daemon_sections,
    frame_with_tiles,
    write_config,
    write_frames,
)
from tests.test_edge_metrics_endpoint import _direct, healthz, scrape

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: steel-inspect
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


def query(port: int, expression: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    try:
        answer = json.loads(_direct.open(url, timeout=5).read())
    except (urllib.error.URLError, ConnectionError):
        return []
    return answer["data"]["result"] if answer.get("status") == "success" else []


def test_debian_prometheus_scrapes_the_metrics_endpoint(tmp_path, mqtt_broker, mean_model):
    if not shutil.which(PROMETHEUS):
        pytest.skip("prometheus is not installed (scripts/ensure-prometheus installs it)")
    images = write_frames(tmp_path / "frames",
                          {f"{i}.png": frame_with_tiles([255, 0]) for i in range(3)})
    metrics_port, prometheus_port = free_port(), free_port()
    sections = daemon_sections(tmp_path, mqtt_broker, mean_model, images,
                               camera={"rate": 10, "loop": True})
    sections["metrics"] = {"enabled": True, "listen": f"127.0.0.1:{metrics_port}"}
    daemon = DaemonProcess(write_config(tmp_path / "edge.toml", sections))
    config = tmp_path / "prometheus.yml"
    config.write_text(CONFIG.format(port=metrics_port))
    with open(tmp_path / "prometheus.log", "wb") as log:
        server = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prometheus_port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: healthz(metrics_port)[0] == 200, 30), daemon.log
        target = '{job="steel-inspect",line="L1",camera="cam1"}'

        def processed() -> list[dict]:
            found = query(prometheus_port, f"steel_inspect_frames_processed_total{target}")
            return found if found and float(found[0]["value"][1]) > 0 else []
        assert wait_until(processed, 20), (tmp_path / "prometheus.log").read_text()
        ours = scrape(metrics_port)[("steel_inspect_frames_processed_total",
                                     frozenset({("line", "L1"), ("camera", "cam1")}))]
        assert 0 < float(processed()[0]["value"][1]) <= ours  # scraped earlier, never ahead
        up = query(prometheus_port, 'up{job="steel-inspect"}')
        assert up and up[0]["value"][1] == "1"
        info = query(prometheus_port, f"steel_inspect_model_info{target}")
        assert info and info[0]["metric"]["name"] == "mean-model"
        buckets = query(prometheus_port, f'steel_inspect_inference_seconds_bucket{target}')
        assert any(b["metric"]["le"] == "+Inf" for b in buckets)
    finally:
        server.terminate()
        server.wait(10)
        daemon.stop()
