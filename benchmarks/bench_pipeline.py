"""The daemon against its own runtime: frames/s of the whole daemon vs the runtime alone.

    .venv/bin/python benchmarks/bench_pipeline.py [--model MODEL.onnx] [--frames 300]
        [--rounds 5] [--threads 1] [--decode] [--min-score 0.99] [--profile FILE]

Both sides get the same 1600x256 Mono8 frames (random pixels, a pool of 8) and the same model
(default: the tests' tiny mean model; `--model` takes any .onnx with its modelcard.json):
- runtime: the frame's 7 tiles, cut beforehand, run through `Runtime.infer_all_with_cam` (the
  daemon's call) frame after frame, in this thread: the most frames/s the model allows here;
- daemon: the real `edge.daemon.Daemon` (grabber, inference, publisher threads, SQLite outbox,
  paho to a real mosquitto on a free loopback port), fed from memory without drops, or with
  `--decode` from a folder of PNG files through the replay source (decoding included); timed
  from the first frame to the last processed one.
The two alternate for --rounds rounds, so load from other processes hits both alike; the result
is the ratio daemon/runtime of each round (min / median / max) beside the raw frames/s.

Wall-clock frames/s measure the neighbours as much as the daemon on a shared machine, so each
round also records CPU seconds per frame (`time.process_time`, and the inference thread's own CPU
clock), which other processes do not inflate: runtime alone vs the daemon's inference thread (the
critical path: at saturation its CPU per frame bounds the daemon's frames/s when the other
threads have a core of their own) vs the whole daemon process (every thread; mosquitto is a
process of its own and not counted). `--profile FILE` writes a cProfile of the daemon's inference
thread (last round) for `python -m pstats`.
"""

from __future__ import annotations

import argparse
import cProfile
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
from edge.inference.pipeline import Pipeline  # noqa: E402
from edge.inference.tiling import tile_frame  # noqa: E402
from edge.observe.sdnotify import SdNotifier  # noqa: E402
from edge.sources.replay import ReplaySource  # noqa: E402
from tests.fixtures.broker import Broker  # noqa: E402
from tests.fixtures.edge_daemon import write_mean_model  # noqa: E402


def runtime_fps(model_path: Path, pool: list[np.ndarray], frames: int,
                threads: int) -> tuple[float, float]:
    """Frames/s and CPU ms per frame of the runtime alone."""
    # a bare --model has no gate verdict; its speed does not depend on one
    model = load_model(model_path, "onnxruntime", max_batch=8, threads=threads,
                       allow_ungated=True)
    try:
        tile = model.runtime.input_spec.height
        batches = [tile_frame(image, tile=tile).stack()[..., None] for image in pool]
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(frames):  # the daemon's call: with the class activation maps, if any
            model.runtime.infer_all_with_cam(batches[i % len(batches)])
        cpu_ms = (time.process_time() - cpu) * 1e3 / frames
        return frames / (time.perf_counter() - started), cpu_ms
    finally:
        model.close()


class TimedRuntimeCalls:
    """Wraps the runtime's per-frame call on the daemon's runtime object: the thread CPU seconds
    spent inside it, so the rest of the inference thread's CPU is the daemon's own work."""

    def __init__(self, runtime) -> None:
        self.cpu_s = 0.0
        call = runtime.infer_all_with_cam

        def timed(batch):
            started = time.thread_time()
            try:
                return call(batch)
            finally:
                self.cpu_s += time.thread_time() - started
        runtime.infer_all_with_cam = timed


def thread_cpu_s(thread) -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def profiled(target, profile: cProfile.Profile):
    def run() -> None:
        profile.enable()
        try:
            target()
        finally:
            profile.disable()
    return run


def daemon_fps(model_path: Path, workdir: Path, broker: Broker, pool, frames: int,
               threads: int, decode_folder: Path | None, profile: cProfile.Profile | None = None,
               min_score: float | None = None) -> tuple[float, float, float, float]:
    """Frames/s, CPU ms per frame of the daemon process, of its inference thread and of that
    thread outside the runtime call."""
    config = daemon_config(workdir, broker.host, broker.port)
    if min_score is not None:
        config = config.model_copy(update={"events": config.events.model_copy(
            update={"min_score": min_score})})
    config = config.model_copy(update={"model": config.model.model_copy(
        update={"path": model_path, "threads": threads, "allow_ungated": True})})
    if decode_folder is not None:
        source = ReplaySource(ReplayCameraConfig(type="replay", path=decode_folder))
    else:
        source = MemorySource(frames, pool)
    daemon = Daemon(config, source=source, notifier=SdNotifier(""), lossless=True)
    (workdir / "outbox.sqlite").unlink(missing_ok=True)
    if profile is not None:
        original = Pipeline._inference_loop
        Pipeline._inference_loop = lambda self: profiled(lambda: original(self), profile)()
    try:
        daemon.start()
    finally:
        if profile is not None:
            Pipeline._inference_loop = original
    try:
        if not daemon.mqtt.ready.wait(10):
            raise SystemExit(f"bench_pipeline: broker not ready ({daemon.mqtt.state})")
        inference = next(t for t in daemon.pipeline._threads if t.name == "inference")
        # the replay source (--decode) starts with the daemon, so frames may already have been
        # processed by now: the CPU clocks count from here and divide by the frames after here
        runtime_calls = TimedRuntimeCalls(daemon.pipeline.processor.runtime)
        before = daemon.stats.frames_processed
        cpu, inference_cpu = time.process_time(), thread_cpu_s(inference)
        if isinstance(source, MemorySource):
            source.go()
        while not daemon.pipeline.finished:
            time.sleep(0.005)
        counted = daemon.stats.frames_processed - before
        if counted < frames // 2:
            raise SystemExit(f"bench_pipeline: only {counted} of {frames} frames were processed "
                             "after the broker was ready; use more --frames")
        cpu_ms = (time.process_time() - cpu) * 1e3 / counted
        inference_s = thread_cpu_s(inference) - inference_cpu
        own_ms = (inference_s - runtime_calls.cpu_s) * 1e3 / counted
        return daemon.stats.processing_fps(), cpu_ms, inference_s * 1e3 / counted, own_ms
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
    parser.add_argument("--min-score", type=float,
                        help="events.min_score: 0.99 makes (almost) every frame defect-free, so "
                             "only the per-frame pipeline is measured, not defect localisation")
    parser.add_argument("--profile", type=Path,
                        help="write a cProfile of the daemon's inference thread (last round)")
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
            for number in range(args.rounds):
                last = number == args.rounds - 1
                # timed by the thread's CPU clock: waiting for a core is not the daemon's work
                profile = cProfile.Profile(time.thread_time) if args.profile and last else None
                alone, alone_cpu = runtime_fps(model_path, pool, args.frames, args.threads)
                whole, whole_cpu, inference_cpu, own_cpu = daemon_fps(
                    model_path, workdir, broker, pool, args.frames, args.threads, folder, profile,
                    args.min_score)
                rows.append((alone, whole, whole / alone, alone_cpu / inference_cpu,
                             alone_cpu / whole_cpu, own_cpu))
                print(f"runtime {alone:8.1f} frames/s   daemon {whole:8.1f} frames/s   "
                      f"ratio {whole / alone:.2f}   CPU ms/frame: runtime {alone_cpu:.3f}, "
                      f"daemon inference thread {inference_cpu:.3f}, daemon process "
                      f"{whole_cpu:.3f}, inference thread outside the runtime call "
                      f"{own_cpu:.3f}   (load {os.getloadavg()[0]:.1f})", flush=True)
                if profile is not None:
                    profile.dump_stats(args.profile)
        finally:
            broker.stop()
    ratios = [r[2] for r in rows]
    cpu_ratios = ", ".join(
        f"{name} min {min(r[i] for r in rows):.2f} "
        f"median {statistics.median(r[i] for r in rows):.2f} max {max(r[i] for r in rows):.2f}"
        for i, name in ((3, "inference thread"), (4, "whole process")))
    print(f"\n{model_path.name}, {args.frames} frames x {args.rounds} rounds, "
          f"{'PNG decode' if args.decode else 'memory source'}, {args.threads} ORT thread(s): "
          f"daemon/runtime min {min(ratios):.2f} median {statistics.median(ratios):.2f} "
          f"max {max(ratios):.2f}; runtime median {statistics.median(r[0] for r in rows):.0f} "
          f"frames/s, daemon median {statistics.median(r[1] for r in rows):.0f} frames/s")
    own = [r[5] * 1e3 for r in rows]
    print(f"CPU per frame, runtime/daemon: {cpu_ratios}; inference thread outside the runtime "
          f"call: min {min(own):.0f} median {statistics.median(own):.0f} max {max(own):.0f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
