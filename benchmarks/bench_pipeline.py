"""The daemon against its own runtime: frames/s of the whole daemon vs the runtime alone.

    .venv/bin/python benchmarks/bench_pipeline.py [--model MODEL.onnx] [--frames 300]
        [--rounds 5] [--threads 1] [--decode]

Both sides get the same 1600x256 Mono8 frames (random pixels, a pool of 8) and the same model
(default: the tests' tiny mean model; `--model` takes any .onnx with its modelcard.json):
- runtime: the frame's 7 tiles cut and run through `Runtime.infer_all`, frame after frame, in
  this thread: the most frames/s the model allows on this machine;
- daemon: the real `edge.daemon.Daemon` (grabber, inference, publisher threads, SQLite outbox,
  paho to a real mosquitto on a free loopback port), fed from memory without drops, or with
  `--decode` from a folder of PNG files through the replay source (decoding included); timed
  from the first frame to the last processed one.
The two alternate for --rounds rounds, so load from other processes hits both alike; the result
is the ratio daemon/runtime of each round (min / median / max) beside the raw frames/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fixtures, benchmarks

from benchmarks.bench_daemon import MemorySource, daemon_config, frame_pool  # noqa: E402
from edge.config import ReplayCameraConfig  # noqa: E402
from edge.daemon import Daemon  # noqa: E402
from edge.inference.model import load_model  # noqa: E402
from edge.inference.tiling import tile_frame  # noqa: E402
from edge.observe.sdnotify import SdNotifier  # noqa: E402
from edge.sources.replay import ReplaySource  # noqa: E402
from tests.fixtures.broker import Broker  # noqa: E402
from tests.fixtures.edge_daemon import write_mean_model  # noqa: E402


def runtime_fps(model_path: Path, pool: list[np.ndarray], frames: int, threads: int) -> float:
    model = load_model(model_path, "onnxruntime", max_batch=8, threads=threads)
    try:
        tile = model.runtime.input_spec.height
        batches = [tile_frame(image, tile=tile).stack()[..., None] for image in pool]
        started = time.perf_counter()
        for i in range(frames):
            model.runtime.infer_all(batches[i % len(batches)])
        return frames / (time.perf_counter() - started)
    finally:
        model.close()


def daemon_fps(model_path: Path, workdir: Path, broker: Broker, pool, frames: int,
               threads: int, decode_folder: Path | None) -> float:
    config = daemon_config(workdir, broker.host, broker.port)
    config = config.model_copy(update={"model": config.model.model_copy(
        update={"path": model_path, "threads": threads})})
    if decode_folder is not None:
        source = ReplaySource(ReplayCameraConfig(type="replay", path=decode_folder))
    else:
        source = MemorySource(frames, pool)
    daemon = Daemon(config, source=source, notifier=SdNotifier(""), lossless=True)
    (workdir / "outbox.sqlite").unlink(missing_ok=True)
    daemon.start()
    try:
        if not daemon.mqtt.ready.wait(10):
            raise SystemExit(f"bench_pipeline: broker not ready ({daemon.mqtt.state})")
        if isinstance(source, MemorySource):
            source.go()
        while not daemon.pipeline.finished:
            time.sleep(0.005)
        return daemon.stats.processing_fps()
    finally:
        daemon.shutdown(flush_timeout=5.0)
        for suffix in ("", "-wal", "-shm", ".lock"):
            (workdir / f"outbox.sqlite{suffix}").unlink(missing_ok=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an .onnx with modelcard.json beside it")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    parser.add_argument("--decode", action="store_true",
                        help="daemon reads PNG files through the replay source (decoding too)")
    args = parser.parse_args(argv)
    pool = frame_pool()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model_path = args.model or write_mean_model(workdir / "model")
        folder = None
        if args.decode:
            folder = workdir / "frames"
            folder.mkdir()
            for i in range(args.frames):
                cv2.imwrite(str(folder / f"{i:06d}.png"), pool[i % len(pool)])
        broker = Broker(workdir / "broker")
        broker.start()
        rows = []
        try:
            for _ in range(args.rounds):
                alone = runtime_fps(model_path, pool, args.frames, args.threads)
                whole = daemon_fps(model_path, workdir, broker, pool, args.frames, args.threads,
                                   folder)
                rows.append((alone, whole, whole / alone))
                print(f"runtime {alone:8.1f} frames/s   daemon {whole:8.1f} frames/s   "
                      f"ratio {whole / alone:.2f}   (load {os.getloadavg()[0]:.1f})", flush=True)
        finally:
            broker.stop()
    ratios = [r[2] for r in rows]
    print(f"\n{model_path.name}, {args.frames} frames x {args.rounds} rounds, "
          f"{'PNG decode' if args.decode else 'memory source'}, {args.threads} ORT thread(s): "
          f"daemon/runtime min {min(ratios):.2f} median {statistics.median(ratios):.2f} "
          f"max {max(ratios):.2f}; runtime median {statistics.median(r[0] for r in rows):.0f} "
          f"frames/s, daemon median {statistics.median(r[1] for r in rows):.0f} frames/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
