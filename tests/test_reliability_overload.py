"""Reliability: the camera delivers 4x more frames than inference can take, for 60 s.

`edge run` runs as a child process with a replay camera at RATE fps. Its ONNX Runtime calls are
stretched to INFER_S seconds each (one call per 2-tile frame) by a start-up hook, so inference
manages about 1 / INFER_S fps: a stand-in for a slow engine whose thread waits on the GPU, chosen
over a CPU-heavy model so that the result does not depend on what else the 2-core CI box runs.
Measured: VmRSS of the daemon process every 0.5 s, the stats topic (frames in, processed,
dropped), and the latency of every event from its acquisition timestamp to its receipt.
"""

from __future__ import annotations

import datetime as dt
import signal
import time

import numpy as np
import pytest

from tests.fixtures.broker import Subscriber
from tests.fixtures.edge_daemon import (
    DaemonProcess,
    daemon_sections,
    frame_with_tiles,
    validate_messages,
    write_config,
    write_frames,
)
from tests.fixtures.reliability import RssSampler, slow_inference_env, wait_until

INFER_S = 0.04  # -> about 25 frames/s of inference
RATE = 4 / INFER_S  # the camera: 4x faster
DURATION_S = 60.0
WARM_UP_S = 10.0  # RSS growth is measured from here on
FRAME_QUEUE = 4
RSS_GROWTH_BOUND_MIB = 8.0
RSS_BOUND_MIB = 256.0
# a processed frame waits for at most FRAME_QUEUE frames ahead of it plus its own inference
# (an unbounded queue would add 0.75 s of latency per second: 45 s by the end)
LATENCY_BOUND_S = (FRAME_QUEUE + 1) * INFER_S + 1.0  # 1 s slack for a loaded 2-core CI box


def parse_ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.mark.slow
def test_camera_4x_faster_than_inference_for_60s(tmp_path, mqtt_broker, mean_model):
    images = write_frames(
        tmp_path / "frames", {f"{i:02d}.png": frame_with_tiles([200, 0]) for i in range(10)}
    )
    sections = daemon_sections(
        tmp_path, mqtt_broker, mean_model, images,
        camera={"rate": RATE, "loop": True},
        pipeline={"frame_queue": FRAME_QUEUE},
        mqtt={"stats_interval": 2.0},
    )
    config = write_config(tmp_path / "edge.toml", sections)
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, "steel-inspect/#")
    clock_offset = time.time() - time.monotonic()  # receipt times are monotonic
    daemon = DaemonProcess(config, env=slow_inference_env(tmp_path / "hook", INFER_S))
    try:
        assert wait_until(lambda: subscriber.messages("/defects"), timeout=30), daemon.log
        sampler = RssSampler(daemon.pid, interval=0.5)
        started = time.monotonic()
        while time.monotonic() - started < DURATION_S:
            assert daemon.process.poll() is None, daemon.log
            time.sleep(0.5)
        samples = sampler.stop()
        stats = subscriber.payloads("/stats")[-1]
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, daemon.log
        validate_messages(subscriber.messages())
    finally:
        daemon.stop()
        subscriber.close()

    events = [m for m in subscriber.messages("/defects")]
    latencies = np.array([m.received + clock_offset - parse_ts(m.json()["ts"]) for m in events])
    rss = np.array([kib for _, kib in samples]) / 1024
    after_warm_up = np.array([kib for t, kib in samples if t >= WARM_UP_S]) / 1024
    growth = after_warm_up.max() - after_warm_up[0]
    in_rate = stats["frames_in"] / stats["uptime_s"]
    processed_rate = stats["frames_processed"] / stats["uptime_s"]
    print(
        f"\noverload {DURATION_S:.0f} s: camera {in_rate:.1f} fps, inference "
        f"{processed_rate:.1f} fps (ratio {in_rate / processed_rate:.2f}); "
        f"frames in {stats['frames_in']}, processed {stats['frames_processed']}, "
        f"dropped {stats['frames_dropped']} ({stats['frames_dropped'] / stats['frames_in']:.0%}); "
        f"RSS {rss.min():.1f}..{rss.max():.1f} MiB, growth after {WARM_UP_S:.0f} s "
        f"{growth:+.1f} MiB over {len(after_warm_up)} samples; latency of {len(events)} events "
        f"p50 {np.percentile(latencies, 50) * 1e3:.0f} ms, p99 "
        f"{np.percentile(latencies, 99) * 1e3:.0f} ms, max {latencies.max() * 1e3:.0f} ms "
        f"(bound {LATENCY_BOUND_S * 1e3:.0f} ms)"
    )
    assert in_rate / processed_rate >= 3.0  # the camera really outran inference
    assert stats["frames_dropped"] > 0.5 * stats["frames_in"]
    accounted = stats["frames_processed"] + stats["frames_dropped"] + stats["frames_failed"]
    assert 0 <= stats["frames_in"] - accounted <= FRAME_QUEUE + 2  # queued or in inference
    assert rss.max() <= RSS_BOUND_MIB
    assert growth <= RSS_GROWTH_BOUND_MIB
    assert np.percentile(latencies, 99) <= LATENCY_BOUND_S
    assert len(events) >= 0.9 * processed_rate * DURATION_S
