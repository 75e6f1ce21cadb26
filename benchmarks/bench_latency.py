"""End-to-end latency: a frame's acquisition timestamp -> the subscriber's receipt of its event.

    .venv/bin/python benchmarks/bench_latency.py [--rates 10,50] [--seconds 30] [--threads 1] \
        [--run DIR] [--data DIR]

The real daemon (`edge run --config FILE`, a child process) replays a `train synth` data set at a
fixed frame rate (looping) through a really trained tiny model (`train fit --arch tiny`, then
`convert export-onnx`; both cached under .test-cache/bench-latency/) with ONNX Runtime, and
publishes to a mosquitto started on a free loopback port. A subscriber in this process (QoS 1)
takes the wall-clock time of each `defects` message and subtracts the event's `ts` (the replay
source stamps a frame when it hands it over, like a camera's acquisition). `ts` has millisecond
resolution (truncated), so each latency reads 0-1 ms high. The first --warm-up seconds of events
are left out (model warm-up and broker connection). The daemon's own stats (`inference_ms`,
`overhead_ms`, drops) are taken from its last `stats` message.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.fixtures

from tests.fixtures.broker import Broker  # noqa: E402
from tests.fixtures.edge_daemon import DaemonProcess, daemon_sections, write_config  # noqa: E402

CACHE = ROOT / ".test-cache" / "bench-latency"
DEFAULT_DATA = ROOT / ".test-cache" / "dev-synth-240"
SYNTH_IMAGES = 240
# a few minutes on 2 CPU cores; the model only has to be a real trained one that finds defects
FIT_ARGS = ["--arch", "tiny", "--epochs", "6", "--steps-per-epoch", "40", "--batch-size", "32",
            "--lr", "3e-3", "--oversample", "1", "--focal-alpha", "none", "--quiet"]


def tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def prepare(data: Path, run: Path, threads: int) -> Path:
    """The data set and the trained, exported tiny model (made once, then cached)."""
    if not (data / "train_images").is_dir():
        print(f"generating {SYNTH_IMAGES} images in {data} ...", flush=True)
        subprocess.run([tool("train"), "synth", "--out", str(data), "--images",
                        str(SYNTH_IMAGES), "--seed", "0"], check=True)
    if not (run / "model.keras").is_file():
        print(f"training the tiny model in {run} (a few minutes) ...", flush=True)
        subprocess.run([tool("train"), "fit", "--data", str(data), "--out", str(run), *FIT_ARGS,
                        "--threads", str(threads)], check=True)
    if not (run / "model.onnx").is_file():
        print("exporting it to ONNX ...", flush=True)
        subprocess.run([tool("convert"), "export-onnx", "--run", str(run), "--threads",
                        str(threads)], check=True)
    return run / "model.onnx"


class LatencySubscriber:
    """Records (receipt time, event ts) of every defect event and the latest stats message."""

    def __init__(self, host: str, port: int, prefix: str) -> None:
        self.prefix = prefix
        self.latencies: list[tuple[float, float]] = []
        self.stats: dict | None = None
        self.connected = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.connect(host, port, keepalive=30)
        self._client.loop_start()
        if not self.connected.wait(10):
            raise SystemExit(f"bench_latency: cannot subscribe on {host}:{port}")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        client.subscribe(f"{self.prefix}/#", qos=1)
        self.connected.set()

    def _on_message(self, client, userdata, message) -> None:
        received = time.time()
        kind = message.topic.rsplit("/", 1)[-1]
        if kind == "defects":
            stamp = dt.datetime.fromisoformat(json.loads(message.payload)["ts"]).timestamp()
            self.latencies.append((stamp, received - stamp))
        elif kind == "stats":
            self.stats = json.loads(message.payload)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def run_rate(model: Path, images: Path, rate: float, args, workdir: Path) -> dict:
    broker = Broker(workdir / "broker")
    broker.start()
    try:
        subscriber = LatencySubscriber(broker.host, broker.port, "steel-inspect/L1/cam1")
        try:
            return measure_rate(model, images, rate, args, workdir, broker, subscriber)
        finally:
            subscriber.close()
    finally:
        broker.stop()


def measure_rate(model: Path, images: Path, rate: float, args, workdir: Path, broker,
                 subscriber: LatencySubscriber) -> dict:
    sections = daemon_sections(
        workdir, broker, model, images,
        camera={"rate": rate, "loop": True},
        mqtt={"stats_interval": 1.0},
        logging={"level": "WARNING"},
    )
    sections["model"].update(threads=args.threads, max_batch=8)
    daemon = DaemonProcess(write_config(workdir / "edge.toml", sections))
    load_before = os.getloadavg()[0]
    started = time.time()
    try:
        time.sleep(args.seconds + args.warm_up)
        stats = dict(subscriber.stats or {})
        daemon.signal(signal.SIGTERM)
        code = daemon.wait(60)
    finally:
        daemon.stop()
    if code != 0:
        raise SystemExit(f"bench_latency: the daemon exited with {code}:\n{daemon.log[-2000:]}")
    kept = [ms for stamp, ms in subscriber.latencies if stamp >= started + args.warm_up]
    return {"latency_ms": np.asarray(kept) * 1e3, "stats": stats,
            "load": (load_before, os.getloadavg()[0])}


def row(rate: float, result: dict) -> list[str]:
    latency, stats = result["latency_ms"], result["stats"]
    p50, p99 = (np.percentile(latency, [50, 99]) if len(latency) else (float("nan"),) * 2)
    inference, overhead = stats.get("inference_ms", {}), stats.get("overhead_ms", {})
    return [
        f"{rate:g}", f"{stats.get('fps', 0):.1f}", str(stats.get("frames_processed", "?")),
        str(stats.get("frames_dropped", "?")), str(len(latency)),
        f"{p50:.1f} / {p99:.1f} / {latency.max() if len(latency) else float('nan'):.1f}",
        f"{inference.get('p50')} / {inference.get('p99')}",
        f"{overhead.get('p50')} / {overhead.get('p99')}",
        f"{result['load'][0]:.2f} / {result['load'][1]:.2f}",
    ]


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for cells in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="10,50", type=lambda s: [float(r) for r in s.split(",")],
                        help="frame rates to replay at, frames/s (default 10,50)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per rate")
    parser.add_argument("--warm-up", type=float, default=3.0, help="seconds left out at start")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (model)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="`train synth` folder")
    parser.add_argument("--run", type=Path, default=CACHE / "tiny", help="trained tiny run")
    args = parser.parse_args()
    data, run = args.data.resolve(), args.run.resolve()  # the config resolves against its folder
    model = prepare(data, run, threads=os.cpu_count() or 1)
    images = data / "train_images"
    rows = []
    for rate in args.rates:
        with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
            rows.append(row(rate, run_rate(model, images, rate, args, Path(tmp))))
        print("  ".join(rows[-1]), flush=True)
    card = json.loads((model.parent / "modelcard.json").read_text())
    print(f"\nend-to-end latency: {card['name']} ({card['arch']}, {card['version']}), ONNX Runtime "
          f"{args.threads} thread(s), frames of {images}, {args.seconds:g} s per rate; "
          f"{os.cpu_count()} CPU cores, python {platform.python_version()}")
    print_table(["rate fps", "fps done", "frames", "dropped", "events",
                 "latency p50 / p99 / max ms", "inference p50 / p99 ms", "overhead p50 / p99 ms",
                 "load avg before / after"], rows)


if __name__ == "__main__":
    main()
