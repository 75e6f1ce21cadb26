"""Acquisition through GenICamSource: frames received vs frames the camera produced.

    .venv/bin/python benchmarks/bench_acquisition.py [--seconds 60] [--fps 200] \
        [--width 800] [--height 256] [--pixel-format Mono8] [--cti PATH] [--serial 1]

Default: the simulated camera of the genicam wheel's viky.cti at its maximum rate. Frames produced
come from the camera's own frame counter (block ids, first to last of the session); a gap in the ids
is a frame the producer dropped. Prints one table: rates, drops, inter-frame intervals, the time
read() takes per frame (fetch + conversion + copy) and the process CPU use.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import genicam
import numpy as np

from edge.config import GenICamCameraConfig
from edge.sources.base import CameraState
from edge.sources.genicam import NUM_BUFFERS, GenICamSource


def run(source: GenICamSource, seconds: float) -> dict:
    arrivals: list[float] = []
    read_times: list[float] = []
    block_ids: list[int] = []
    sessions: set[str] = set()
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    end = wall_start + seconds
    while time.perf_counter() < end:
        started = time.perf_counter()
        frame = source.read(0.5)
        if frame is None:
            continue
        now = time.perf_counter()
        read_times.append(now - started)
        arrivals.append(now)
        block_ids.append(frame.meta["device_frame_id"])
        sessions.add(frame.meta["session"])
    wall = time.perf_counter() - wall_start
    cpu = time.process_time() - cpu_start
    return {
        "wall": wall,
        "cpu": cpu,
        "arrivals": np.array(arrivals),
        "read_times": np.array(read_times),
        "block_ids": block_ids,
        "sessions": len(sessions),
        "counters": source.counters,
        "state": source.state,
    }


def table(result: dict, args) -> list[tuple[str, str]]:
    ids = result["block_ids"]
    received = len(ids)
    produced = ids[-1] - ids[0] + 1 if ids else 0
    gaps = np.diff(result["arrivals"]) * 1e3 if received > 1 else np.zeros(1)
    reads = result["read_times"] * 1e3 if received else np.zeros(1)
    wall = result["wall"]
    return [
        ("configured", f"{args.width}x{args.height} {args.pixel_format} @ {args.fps:g} fps"),
        ("duration (s)", f"{wall:.1f}"),
        ("frames received", f"{received}"),
        ("frames produced (device ids)", f"{produced}"),
        ("dropped (id gaps)", f"{produced - received} ({result['counters']['dropped']} counted)"),
        ("drop rate", f"{(produced - received) / produced:.4%}" if produced else "n/a"),
        ("received rate (fps)", f"{received / wall:.1f}"),
        ("interval p50 / p99 / max (ms)", _percentiles(gaps)),
        ("read() per frame p50 / p99 / max (ms)", _percentiles(reads)),
        ("process CPU (% of one core)", f"{100 * result['cpu'] / wall:.0f}"),
        ("MB/s delivered (gray)", f"{received * args.width * args.height / wall / 1e6:.1f}"),
        ("timeouts / errors / reconnects", _counter_line(result["counters"])),
        ("sessions / final state", f"{result['sessions']} / {result['state']}"),
        ("load average after (1 min)", f"{os.getloadavg()[0]:.2f}"),
    ]


def _percentiles(values: np.ndarray) -> str:
    p50, p99 = np.percentile(values, [50, 99])
    return f"{p50:.2f} / {p99:.2f} / {values.max():.2f}"


def _counter_line(counters: dict) -> str:
    return f"{counters['timeouts']} / {counters['errors']} / {counters['reconnects']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fps", type=float, default=200.0)
    parser.add_argument("--width", type=int, default=800)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--pixel-format", default="Mono8")
    parser.add_argument("--cti", type=Path, default=Path(genicam.__file__).parent / "viky.cti")
    parser.add_argument("--serial", default="1")
    args = parser.parse_args()
    config = GenICamCameraConfig(
        type="genicam",
        cti=[args.cti],
        serial=args.serial,
        pixel_format=args.pixel_format,
        width=args.width,
        height=args.height,
        frame_rate=args.fps,
    )
    with GenICamSource(config) as source:
        if source.state != CameraState.OK:
            raise SystemExit(f"bench_acquisition: camera not available ({source.state})")
        source.read(2.0)  # the first frame after start, not timed
        result = run(source, args.seconds)
    print(f"acquisition: {args.cti.name}, camera serial {args.serial}, {source.device_name}")
    machine = f"{os.cpu_count()} CPU cores, {platform.machine()}"
    print(f"{NUM_BUFFERS} buffers, {machine}, python {platform.python_version()}")
    rows = table(result, args)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
