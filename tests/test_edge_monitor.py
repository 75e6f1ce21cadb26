"""`edge monitor` sees every event of a replay, once, with latency, and logs them as JSON lines."""

import json

from edge.cli import main as edge_main
from edge.config import load_config
from edge.observe.monitor import Monitor
from tests.fixtures.edge_daemon import (
    daemon_sections,
    expected_classes,
    frame_with_tiles,
    write_config,
    write_frames,
)

LEVELS = [10, 200, 150, 60]  # grey levels of frames; the mean model flags the bright ones


def test_monitor_counts_every_event_of_a_replay(tmp_path, mqtt_broker, mean_model):
    frames = {f"f{i:02d}.png": frame_with_tiles([level, 10]) for i, level in enumerate(LEVELS)}
    images = write_frames(tmp_path / "frames", frames)
    config_path = write_config(
        tmp_path / "edge.toml", daemon_sections(tmp_path, mqtt_broker, mean_model, images)
    )
    monitor = Monitor(load_config(config_path), events_log=tmp_path / "events.jsonl")
    monitor.start()
    try:
        assert edge_main(["replay", "--config", str(config_path), "--images", str(images)]) == 0
        assert monitor.stopped.wait(10), "the replay's 'stopped' status never arrived"
    finally:
        monitor.close()
    expected_events = [lvl for lvl in LEVELS if expected_classes(lvl)]
    assert monitor.events == len(expected_events) == 2
    assert monitor.duplicates == 0 and monitor.gaps == 0
    assert len(monitor.latency_ms) == 2 and all(0 <= ms < 60_000 for ms in monitor.latency_ms)
    logged = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert sorted(e["frame_id"] for e in logged) == ["f01.png", "f02.png"]
    line = monitor.summary_line()
    assert "events 2" in line and "status stopped" in line
