"""Daemon overhead: everything but the model, per 1600x256 Mono8 frame, on one core.

    .venv/bin/python benchmarks/bench_daemon.py [--frames 3000] [--repeat 3] [--cpu N | --no-pin]
        [--profile] [--cases "no defects,..."]

The model is the null runtime (`edge.inference.runtime.null`: fixed probabilities, no inference), so
what is timed is the daemon itself: tiling and batching, thresholds, event building, JSON, the
SQLite outbox (appends synced to disk) and QoS 1 publishing to a real mosquitto started on a free
loopback port. Three cases: no defects (no events), one class on every tile (one event of 7
defects per frame) and all three classes on every tile (21 defects per frame); the two defect
cases also "+ CAM": the runtime then has a `cam` output (8x8 maps per class, varied cells whose
mean is the tile's logit), so each defect's box comes from `edge.defects.localise` (the CAM
refine), and the difference to the case without it is the localisation's cost, side by side.

Four tables:
- stages: each step alone in one thread, CPU microseconds per frame (the outbox step stores the
  events of 5 frames per transaction, what one publisher turn holds at 1000 frames/s, and
  removes the previous ones; its JSON encoding is shown apart);
- daemon: the real `edge.daemon.Daemon` (grabber, inference and publisher threads, paho) fed from
  memory as fast as it takes frames, without drops; timed from the first frame until the broker
  acknowledged the last event; the median of --repeat runs (cases interleaved). CPU ms per frame
  counts every thread of this process; the broker's CPU is shown apart. The process is pinned to
  one CPU (the broker is not) unless --no-pin;
- the daemon's CPU per frame by thread (from /proc/self/task);
- localisation, one thread: CPU microseconds per frame of the defect builder (events v2) with and
  without the CAM refine, and the difference.

--profile runs the daemon cases under cProfile (every thread) and prints the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import os
import platform
import pstats
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.fixtures.broker

from edge.config import parse_config  # noqa: E402
from edge.daemon import Daemon  # noqa: E402
from edge.defects.events import DefectRule, EventBuilder, model_info  # noqa: E402
from edge.defects.inspection import cam_refiner  # noqa: E402
from edge.defects.objects import ClassCuts, DefectBuilder  # noqa: E402
from edge.defects.position import Placement  # noqa: E402
from edge.delivery.outbox import Outbox  # noqa: E402
from edge.inference.model import LoadedModel  # noqa: E402
from edge.inference.modelcard import ClassInfo, ModelCard  # noqa: E402
from edge.inference.pipeline import FrameProcessor  # noqa: E402
from edge.inference.runtime import load_runtime  # noqa: E402
from edge.inference.runtime.null import NullRuntime  # noqa: E402
from edge.inference.tiling import tile_frame  # noqa: E402
from edge.observe.sdnotify import SdNotifier  # noqa: E402
from edge.sources.base import CameraState, Frame, FrameSource  # noqa: E402
from tests.fixtures.broker import Broker  # noqa: E402

WIDTH, HEIGHT = 1600, 256
CLASS_NAMES = ("rolled-in scale", "scratches", "rolling films")
CASES = {  # name -> (probabilities per class, whether the runtime has a cam output)
    "no defects": ((0.1, 0.2, 0.3), False),
    "1 class x 7 tiles": ((0.9, 0.2, 0.3), False),
    "1 class x 7 tiles + CAM": ((0.9, 0.2, 0.3), True),
    "3 classes x 7 tiles": ((0.9, 0.8, 0.7), False),
    "3 classes x 7 tiles + CAM": ((0.9, 0.8, 0.7), True),
}
CAM_SHAPE = (8, 8)
FRAMES_PER_TURN = 5
THREAD_ROLES = ("grabber", "inference", "publisher", "mqtt", "MainThread")


class MemorySource(FrameSource):
    """`count` frames from a small pool of random images, as fast as they are read, after go()."""

    def __init__(self, count: int, pool: list[np.ndarray]) -> None:
        self._count = count
        self._pool = pool
        self._sent = 0
        self._go = threading.Event()
        self._state = CameraState.CONNECTING

    @property
    def state(self) -> CameraState:
        return self._state

    def open(self) -> None:
        self._state = CameraState.OK

    def go(self) -> None:
        self._go.set()

    def read(self, timeout: float) -> Frame | None:
        if not self._go.wait(timeout):
            return None
        if self._state is not CameraState.OK:
            # finished: wait like a real source would instead of returning at once, or the
            # grabber spins on this call and its CPU was counted as daemon overhead
            time.sleep(timeout)
            return None
        if self._sent >= self._count:
            self._state = CameraState.FINISHED
            return None
        image = self._pool[self._sent % len(self._pool)]
        self._sent += 1
        return Frame(frame_id=f"f{self._sent:06d}", timestamp=time.time(), image=image)

    def close(self) -> None:
        self._state = CameraState.STOPPED


class VariedCamRuntime(NullRuntime):
    """The null runtime with CAMs like a trained model's: per tile and class a pool of 8x8 maps
    of varied cells (a blob over noise) whose mean is the class's logit, so the sigmoid of the
    mean is the probability as with a real model; the localisation then selects some cells."""

    def __init__(self, probabilities, max_batch: int, pool: int = 16) -> None:
        super().__init__("null", probabilities, max_batch=max_batch, cam=CAM_SHAPE)
        rng = np.random.default_rng(1)
        row = np.clip(np.asarray(probabilities, np.float64), 1e-7, 1 - 1e-7)
        logits = np.log(row / (1 - row))
        maps = rng.normal(0.0, 1.0, (pool, len(row), *CAM_SHAPE))
        rows, cols = np.mgrid[: CAM_SHAPE[0], : CAM_SHAPE[1]]
        for i in range(pool):
            cy, cx = rng.uniform(0, CAM_SHAPE[0], 2)
            maps[i] += 6.0 * np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / 4.0)
        maps += logits[None, :, None, None] - maps.mean(axis=(2, 3), keepdims=True)
        self._maps = maps.astype(np.float32)
        self._next = 0

    def infer_with_cam(self, batch: np.ndarray):
        probabilities = self.infer(batch)
        picks = (self._next + np.arange(len(batch))) % len(self._maps)
        self._next = int(picks[-1]) + 1
        return probabilities, self._maps[picks]


def frame_pool(count: int = 8) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8) for _ in range(count)]


def null_model(probabilities, cam: bool = False) -> LoadedModel:
    card = ModelCard(
        name="null", arch="null", version="bench", created=dt.datetime.now(dt.UTC).isoformat(),
        classes=[ClassInfo(id=i + 1, name=n) for i, n in enumerate(CLASS_NAMES)],
        thresholds=[0.5, 0.5, 0.5],
    )
    runtime = (VariedCamRuntime(probabilities, max_batch=8) if cam else
               load_runtime("null", Path("null"), probabilities=probabilities, max_batch=8))
    return LoadedModel(runtime=runtime, card=card, path=Path("null"), sha256="0" * 64,
                       manifest=None)


def daemon_config(workdir: Path, host: str = "127.0.0.1", port: int = 1883):
    return parse_config({
        "site": {"line": "L1", "camera": "cam1"},
        "camera": {"type": "replay", "path": str(workdir)},  # unused: the source is given
        "model": {"path": "null", "max_batch": 8},
        "mqtt": {"host": host, "port": port, "stats_interval": 1.0,
                 "max_inflight": 100, "flush_timeout": 30.0},
        "outbox": {"path": str(workdir / "outbox.sqlite")},
        "pipeline": {"frame_queue": 16},
        # the image archive's JPEG thread is not on the inspection path and its cost depends on
        # the disk; off, so these figures stay comparable with those before it existed
        "archive": {"enabled": False},
        "logging": {"level": "WARNING"},
    })


def time_stages(probabilities, workdir: Path, frames: int) -> dict[str, float]:
    """CPU microseconds per frame of each step alone (one thread, so other load adds little)."""
    config = daemon_config(workdir)
    model = null_model(probabilities)
    rule = DefectRule(model.card, config.events)
    processor = FrameProcessor(model, rule, config.tiling)
    builder = EventBuilder(config.site, model_info(model.card, model.sha256))
    pool = frame_pool()
    outbox = Outbox(workdir / f"stages-{time.monotonic_ns()}.sqlite", 10**9, "L1/cam1")
    batch = np.zeros((7, *model.runtime.input_spec.tile_shape), np.uint8)
    probs = model.runtime.infer_all(batch)
    boxes = tile_frame(pool[0], tile=processor.tile, stride=processor.stride).boxes
    keys = ("tiles + batch", "runtime (null)", "thresholds", "event", "JSON", "outbox")
    totals = np.zeros(len(keys))
    pending: list[dict] = []
    clock = time.thread_time
    for i in range(frames):
        image = pool[i % len(pool)]
        t0 = clock()
        defects, _ = processor.process(image)  # tiles + batch + runtime + thresholds
        t1 = clock()
        model.runtime.infer_all(batch)  # again, alone, to split them out of process()
        t2 = clock()
        rule.defects(probs, boxes)
        t3 = clock()
        event = builder.build(Frame(f"f{i}", time.time(), image), defects) if defects else None
        t4 = clock()
        if event is not None:
            json.dumps(event, separators=(",", ":"))  # what append() does per event
            pending.append(event)
        t5 = clock()
        if len(pending) >= FRAMES_PER_TURN:  # one publisher turn: store, remove the acked
            outbox.remove([e.id for e in outbox.pending(0, 1000)])
            outbox.append(pending, "steel-inspect/L1/cam1/defects")
            pending = []
        t6 = clock()
        json_s = t5 - t4
        totals += (t1 - t0 - (t3 - t1), t2 - t1, t3 - t2, t4 - t3, json_s, t6 - t5 - json_s)
    outbox.close()
    times = dict(zip(keys, totals / frames * 1e6, strict=True))
    times["sum"] = sum(times.values())
    return times


def time_localisation(probabilities, workdir: Path, frames: int) -> tuple[float, float]:
    """CPU microseconds per frame of the defect builder without and with the CAM refine (the
    daemon's own `cam_refiner`), on the same tiles, probabilities and CAMs."""
    config = daemon_config(workdir)
    model = null_model(probabilities, cam=True)
    rule = DefectRule(model.card, config.events)
    runtime = model.runtime
    pool = frame_pool()
    processor = FrameProcessor(model, rule, config.tiling)
    boxes = tile_frame(pool[0], tile=processor.tile, stride=processor.stride).boxes
    batch = np.zeros((len(boxes), *runtime.input_spec.tile_shape), np.uint8)
    outputs = [runtime.infer_with_cam(batch) for _ in range(8)]  # varied CAMs, as in the daemon
    classes = ClassCuts(rule.class_ids, rule.class_names, rule.cuts, rule.applied_thresholds)
    builder = DefectBuilder(classes, config.geometry, WIDTH)
    clock = time.thread_time
    totals = [0.0, 0.0]
    for i in range(frames):
        probs, cam = outputs[i % len(outputs)]
        placement = Placement(1, "C", i, 0.0, "none", 0.0)
        t0 = clock()
        builder.build(probs, boxes, placement)
        t1 = clock()
        builder.build(probs, boxes, placement, cam_refiner(classes.cuts, boxes, cam))
        t2 = clock()
        totals[0] += t1 - t0
        totals[1] += t2 - t1
    return totals[0] / frames * 1e6, totals[1] / frames * 1e6


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int | str) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds of each live thread of this process, by role (paho's loop is 'mqtt')."""
    seconds: dict[str, float] = {}
    for thread in threading.enumerate():
        role = "mqtt" if thread.name.startswith("paho") else thread.name
        try:
            seconds[role] = seconds.get(role, 0.0) + process_cpu_seconds(
                f"{os.getpid()}/task/{thread.native_id}"
            )
        except (OSError, TypeError):
            continue  # ended meanwhile
    return seconds


def run_daemon(case, workdir: Path, broker: Broker, frames: int) -> dict:
    probabilities, cam = case
    source = MemorySource(frames, frame_pool())
    config = daemon_config(workdir, broker.host, broker.port)
    daemon = Daemon(config, model=null_model(probabilities, cam), source=source,
                    notifier=SdNotifier(""), lossless=True)
    daemon.start()
    try:
        if not daemon.mqtt.ready.wait(10):
            raise SystemExit(f"bench_daemon: broker not ready ({daemon.mqtt.state})")
        load = os.getloadavg()[0]
        threads0 = thread_cpu_seconds()
        cpu0, broker0, wall0 = cpu_seconds(), process_cpu_seconds(broker._process.pid), \
            time.perf_counter()
        source.go()
        while not (daemon.pipeline.finished and daemon.publisher.acked >= daemon.stats.events
                   and daemon.publisher.idle):
            time.sleep(0.01)
        wall = time.perf_counter() - wall0
        cpu = cpu_seconds() - cpu0
        threads = thread_cpu_seconds()
        broker_cpu = process_cpu_seconds(broker._process.pid) - broker0
    finally:
        daemon.shutdown(flush_timeout=5.0)
    stats = daemon.stats
    overhead = np.asarray(stats.overhead_ms)
    return {
        "frames": stats.frames_processed,
        "events": daemon.publisher.acked,
        "dropped": daemon.pipeline.frames.dropped + daemon.publisher.rejected,
        "fps": stats.frames_processed / wall,
        "cpu_ms": cpu / stats.frames_processed * 1e3,
        "broker_ms": broker_cpu / stats.frames_processed * 1e3,
        "overhead": np.percentile(overhead, [50, 99]),
        "load": (load, os.getloadavg()[0]),
        "threads": {
            role: (threads[role] - threads0.get(role, 0.0)) / stats.frames_processed * 1e3
            for role in THREAD_ROLES if role in threads
        },
    }


def profiled(function, *args):
    """Run function under cProfile in this thread and in every thread it starts."""
    profiles: list[cProfile.Profile] = []
    original_run = threading.Thread.run

    def run_profiled(self):
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.runcall(original_run, self)

    threading.Thread.run = run_profiled
    main = cProfile.Profile()
    try:
        result = main.runcall(function, *args)
    finally:
        threading.Thread.run = original_run
    out = io.StringIO()
    stats = pstats.Stats(main, stream=out)
    for profile in profiles:
        stats.add(profile)
    stats.sort_stats("tottime").print_stats(25)
    print(out.getvalue())
    return result


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


def median_run(runs: list[dict]) -> dict:
    """The run with the median CPU per frame, plus the CPU range of all runs."""
    ordered = sorted(runs, key=lambda r: r["cpu_ms"])
    return {**ordered[len(ordered) // 2], "cpu_range": (ordered[0]["cpu_ms"],
                                                        ordered[-1]["cpu_ms"])}


def daemon_row(name: str, r: dict) -> list[str]:
    low, high = r["cpu_range"]
    return [
        name, str(r["frames"]), str(r["events"]), str(r["dropped"]), f"{r['fps']:.0f}",
        f"{r['cpu_ms']:.3f} ({low:.3f}-{high:.3f})", f"{r['broker_ms']:.3f}",
        f"{r['overhead'][0]:.3f} / {r['overhead'][1]:.3f}",
        f"{r['load'][0]:.2f} / {r['load'][1]:.2f}",
    ]


def measure(args, cases: list[str], workdir: Path) -> tuple[list, dict[str, dict]]:
    broker = Broker(workdir / "broker")
    broker.start()  # before pinning: the broker is not counted on our core
    try:
        if not args.no_pin:
            os.sched_setaffinity(0, {args.cpu})  # threads started later inherit it
        stage_rows = [
            [name, *(f"{v:.0f}" for v in time_stages(CASES[name][0], workdir,
                                                      min(args.frames, 2000)).values())]
            for name in cases if not CASES[name][1]
        ]
        localise_rows = []
        for name in cases:
            if CASES[name][1]:
                plain, refined = time_localisation(CASES[name][0], workdir,
                                                   min(args.frames, 2000))
                localise_rows.append([name, f"{plain:.0f}", f"{refined:.0f}",
                                      f"{refined - plain:.0f}"])
        runs: dict[str, list[dict]] = {name: [] for name in cases}
        call = profiled if args.profile else (lambda function, *a: function(*a))
        for attempt in range(args.repeat):  # cases interleaved, so a load burst hits all alike
            for name in cases:
                folder = workdir / f"{name.replace(' ', '-')}-{attempt}"
                runs[name].append(call(run_daemon, CASES[name], folder, broker, args.frames))
    finally:
        broker.stop()
    return stage_rows, localise_rows, {name: median_run(r) for name, r in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000, help="frames per daemon run")
    parser.add_argument("--repeat", type=int, default=3,
                        help="daemon runs per case; the median (by CPU) is shown")
    parser.add_argument("--cpu", type=int, default=os.cpu_count() - 1,
                        help="CPU this process is pinned to (default the last one)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    parser.add_argument("--profile", action="store_true", help="cProfile the daemon runs")
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated subset of: {', '.join(CASES)}")
    args = parser.parse_args()
    cases = [c.strip() for c in args.cases.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp:
        stage_rows, localise_rows, results = measure(args, cases, Path(tmp))
    pin = "not pinned" if args.no_pin else f"pinned to CPU {args.cpu}"
    print(f"daemon overhead: {WIDTH}x{HEIGHT} Mono8 frames, null runtime, mosquitto on loopback, "
          f"{pin}; {os.cpu_count()} CPU cores, {platform.machine()}, "
          f"python {platform.python_version()}")
    print("\nstages, one thread: CPU us per frame (outbox: append and remove of 5 frames' events "
          "per transaction, without its JSON encoding, shown apart; fsync waits are not CPU)")
    print_table(["case", "tiles + batch", "runtime (null)", "thresholds", "event", "JSON",
                 "outbox", "sum"], stage_rows)
    print(f"\ndaemon, {args.frames} frames per run (lossless), until the last PUBACK; median of "
          f"{args.repeat} runs (CPU range of all runs in brackets)")
    print_table(["case", "frames", "events acked", "dropped", "frames/s", "CPU ms/frame",
                 "broker CPU ms/frame", "overhead p50 / p99 ms", "load avg before / after"],
                [daemon_row(name, r) for name, r in results.items()])
    print("\nthe daemon's CPU by thread (ms per frame)")
    print_table(["case", *THREAD_ROLES],
                [[name, *(f"{r['threads'].get(t, 0.0):.3f}" for t in THREAD_ROLES)]
                 for name, r in results.items()])
    if localise_rows:
        print("\nlocalisation, one thread: CPU us per frame of the defect builder (events v2) "
              "without and with the CAM refine")
        print_table(["case", "tile boxes", "CAM boxes", "CAM refine"], localise_rows)


if __name__ == "__main__":
    main()
