"""Runtimes on the same tiles: Keras vs ONNX Runtime FP32 / FP16 / INT8 (QDQ), tiles per second.

    .venv/bin/python benchmarks/bench_runtimes.py [--archs tiny,resnet152] [--threads 1,2] \
        [--seconds 8] [--runtimes keras,ort-fp32,ort-fp16,ort-int8] [--data DIR]

Models are the project's own: `train.models.build_model(ARCH, 3, "none")` (untrained: speed does
not depend on the weights), exported by `convert.export.export_onnx`, turned into the FP16 copy
and the INT8 QDQ model by `convert.ort_engine.build_fp16` / `build_int8` (calibrated on 32 tiles of
other frames, 8 for ResNet152), all cached under .test-cache/bench-runtimes/ARCH/. Exporting
ResNet152 peaks at 11-12 GiB RSS, so the script exports it only when that much memory is
available (or --force).

Every measurement runs in its own child process (own thread settings, memory given back after): ONNX
Runtime through `edge.inference.runtime.load_runtime("onnxruntime", ..., threads=T)` exactly as the
daemon loads it, Keras through `predict_on_batch` with T intra-op threads. All of them run the same
tiles: 1600x256 frames of a `train synth` data set cut by `edge.inference.tiling` (synthetic tiles
if there is no data set). Batch 1 and batch 7 (one 1600x256 frame) are timed for about --seconds
each after one warm-up batch; with --repeat N the runtimes are measured in N rounds and each
shows its fastest (the load average beside it is that round's). The "max |dp|" column compares
each runtime's probabilities with ONNX Runtime FP32 on the first 14 tiles. "tiles per CPU-s" is
tiles per second of the child's CPU time: with 1 thread it is what an idle core would give, even
while other jobs share the machine (with 2 threads it also counts ONNX Runtime's spin-waiting).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".test-cache" / "bench-runtimes"
DEFAULT_DATA = ROOT / ".test-cache" / "dev-synth-240"
RUNTIMES = ("keras", "ort-fp32", "ort-fp16", "ort-int8")
MODEL_FILES = {"ort-fp32": "model.onnx", "ort-fp16": "model.fp16.onnx",
               "ort-int8": "model.int8.onnx", "keras": "model.keras"}
BATCHES = (1, 7)
BENCH_TILES = 56
CALIBRATION_TILES = 32
# ORT's MinMax calibration keeps every intermediate tensor of every batch: for ResNet152 that is
# GiBs per batch of 8, so it gets one batch (speed does not depend on the calibration)
CALIBRATION_TILES_BY_ARCH = {"resnet152": 8, "resnet50": 8}
COMPARED_TILES = 14
MIN_BATCHES = 3
EXPORT_GIB = {"resnet152": 12, "resnet50": 8}  # peak RSS of the export (11.3 GiB for R152)
CLASS_NAMES = ("rolled-in scale", "scratches", "rolling films")


# ---- tiles ---------------------------------------------------------------------------------

def load_tiles(data: Path, count: int, skip_frames: int = 0) -> tuple[np.ndarray, str]:
    """`count` tiles [n, 256, 256, 1] cut by edge.inference.tiling from the frames of a data set."""
    from edge.inference.tiling import tile_frame  # noqa: PLC0415
    from edge.sources.replay import read_gray  # noqa: PLC0415

    images = sorted((data / "train_images").glob("*.jpg"))[skip_frames:]
    if not images:
        from convert.tiles import synthetic_tiles  # noqa: PLC0415

        return synthetic_tiles(count, seed=skip_frames), "synthetic tiles (no data set)"
    tiles: list[np.ndarray] = []
    for path in images:
        tiles.extend(tile_frame(read_gray(path)).stack())
        if len(tiles) >= count:
            break
    return np.stack(tiles[:count])[..., None], f"tiles of {data.name} frames"


# ---- models --------------------------------------------------------------------------------

def prepare(arch: str, calibration: np.ndarray, force: bool) -> Path:
    """The cached run folder of `arch` with the Keras model and the three ONNX files."""
    run_dir = CACHE / arch
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "model.keras").is_file():
        print(f"building {arch} (untrained) ...", flush=True)
        subprocess.run([sys.executable, __file__, "--make-keras", arch, str(run_dir)], check=True)
    if not (run_dir / "model.onnx").is_file():
        check_memory_for_export(arch, force)
        print(f"exporting {arch} to ONNX ...", flush=True)
        from convert.export import export_onnx  # noqa: PLC0415

        export_onnx(run_dir, threads=os.cpu_count() or 1)
    from convert.ort_engine import build_fp16, build_int8  # noqa: PLC0415

    if not (run_dir / MODEL_FILES["ort-fp16"]).is_file():
        print(f"building the FP16 copy of {arch} ...", flush=True)
        build_fp16(run_dir / "model.onnx", run_dir / MODEL_FILES["ort-fp16"])
    if not (run_dir / MODEL_FILES["ort-int8"]).is_file():
        print(f"building the INT8 QDQ model of {arch} ...", flush=True)
        count = CALIBRATION_TILES_BY_ARCH.get(arch, CALIBRATION_TILES)
        build_int8(run_dir / "model.onnx", run_dir / MODEL_FILES["ort-int8"], calibration[:count])
    return run_dir


def check_memory_for_export(arch: str, force: bool) -> None:
    need = EXPORT_GIB.get(arch, 0)
    available = available_gib()
    if need and available < need and not force:
        raise SystemExit(
            f"bench_runtimes: exporting {arch} needs about {need} GiB of free memory, "
            f"{available:.1f} GiB available; run when the machine is quieter (or --force)"
        )


def available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def make_keras(arch: str, run_dir: Path) -> None:
    """Child: build the untrained model, save it and a model card beside it."""
    from edge.inference.modelcard import ClassInfo, ModelCard  # noqa: PLC0415
    from train.models import build_model  # noqa: PLC0415

    build_model(arch, len(CLASS_NAMES), "none").save(run_dir / "model.keras")
    ModelCard(
        name=f"bench-{arch}", arch=arch, version="untrained",
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        classes=[ClassInfo(id=i + 1, name=n) for i, n in enumerate(CLASS_NAMES)],
        thresholds=[0.5] * len(CLASS_NAMES),
        data={"folder": str(run_dir / "no-data")},  # none: the export checks synthetic tiles
    ).save(run_dir / "modelcard.json")


# ---- one measurement (child process) -------------------------------------------------------

def predictor(runtime: str, path: Path, threads: int):
    if runtime == "keras":
        import tensorflow as tf  # noqa: PLC0415

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        from train.models import load_keras_model  # noqa: PLC0415

        model = load_keras_model(path)
        return lambda batch: np.asarray(model.predict_on_batch(batch), dtype=np.float32)
    from edge.inference.runtime import load_runtime  # noqa: PLC0415

    engine = load_runtime("onnxruntime", path, max_batch=max(BATCHES), threads=threads)
    return engine.infer


def measure(runtime: str, path: Path, threads: int, tiles: np.ndarray, seconds: float,
            probs_out: Path) -> dict:
    predict = predictor(runtime, path, threads)
    np.save(probs_out, np.concatenate([predict(tiles[i : i + 7])
                                       for i in range(0, COMPARED_TILES, 7)]))
    result = {}
    for batch in BATCHES:
        predict(tiles[:batch])  # warm-up
        times, position, started = [], 0, time.perf_counter()
        cpu_started = time.process_time()
        while time.perf_counter() - started < seconds or len(times) < MIN_BATCHES:
            if position + batch > len(tiles):
                position = 0
            t0 = time.perf_counter()
            predict(tiles[position : position + batch])
            times.append(time.perf_counter() - t0)
            position += batch
        cpu = time.process_time() - cpu_started
        result[f"b{batch}"] = {"tiles_per_s": batch * len(times) / sum(times),
                               "tiles_per_cpu_s": batch * len(times) / cpu,
                               "ms_per_batch": float(np.median(times) * 1e3)}
    result["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def run_child(runtime: str, path: Path, threads: int, tiles_path: Path, seconds: float,
              probs_out: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TF_NUM_INTRAOP_THREADS=str(threads),
               TF_NUM_INTEROP_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    load = os.getloadavg()[0]
    args = [sys.executable, __file__, "--measure", runtime, str(path), str(threads),
            str(tiles_path), str(seconds), str(probs_out)]
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": tail[-200:], "load": (load, os.getloadavg()[0])}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load"] = (load, os.getloadavg()[0])
    return result


# ---- the table -----------------------------------------------------------------------------

def row(arch: str, runtime: str, threads: int, result: dict, reference: np.ndarray | None,
        probs_path: Path) -> list[str]:
    load = f"{result['load'][0]:.2f} / {result['load'][1]:.2f}"
    if "error" in result:
        return [arch, runtime, str(threads), "failed", "", "", "", "", "",
                load + " " + result["error"]]
    diff = ""
    if reference is not None and probs_path.is_file():
        diff = f"{float(np.max(np.abs(np.load(probs_path) - reference))):.1e}"
    return [
        arch, runtime, str(threads), f"{result['b1']['tiles_per_s']:.1f}",
        f"{result['b7']['tiles_per_s']:.1f}", f"{result['b7']['ms_per_batch']:.0f}",
        f"{result['b7']['tiles_per_cpu_s']:.1f}", diff, f"{result['rss_mib']:.0f}", load,
    ]


def best_of(best: dict | None, new: dict) -> dict:
    """The faster of two measurements of one runtime (by batch-7 tiles/s); errors lose."""
    if best is None or "error" in best:
        return new
    if "error" in new or new["b7"]["tiles_per_s"] <= best["b7"]["tiles_per_s"]:
        return best
    return new


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for cells in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)), flush=True)


def benchmark(args) -> None:
    tiles, source = load_tiles(args.data, BENCH_TILES)
    calibration, _ = load_tiles(args.data, CALIBRATION_TILES, skip_frames=100)
    header = ["arch", "runtime", "threads", "tiles/s b1", "tiles/s b7", "ms/batch b7",
              "tiles per CPU-s b7", "max |dp| vs fp32", "peak RSS MiB", "load avg before / after"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-runtimes-") as tmp:
        tiles_path = Path(tmp) / "tiles.npy"
        np.save(tiles_path, tiles)
        for arch in args.archs:
            run_dir = prepare(arch, calibration, args.force)
            for threads in args.threads:
                results: dict[str, dict] = {}
                for _ in range(args.repeat):  # rounds: a load burst hits one round, not a runtime
                    for runtime in args.runtimes:
                        probs = Path(tmp) / f"{arch}-{runtime}-{threads}.npy"
                        result = run_child(runtime, run_dir / MODEL_FILES[runtime], threads,
                                           tiles_path, args.seconds, probs)
                        print(arch, runtime, threads, result, flush=True)
                        results[runtime] = best_of(results.get(runtime), result)
                fp32 = Path(tmp) / f"{arch}-ort-fp32-{threads}.npy"
                reference = np.load(fp32) if fp32.is_file() else None
                rows += [row(arch, runtime, threads, result, reference,
                             Path(tmp) / f"{arch}-{runtime}-{threads}.npy")
                         for runtime, result in results.items()]
    print(f"\nruntimes on the same {len(tiles)} tiles ({source}); {os.cpu_count()} CPU cores, "
          f"{platform.processor() or platform.machine()}, python {platform.python_version()}")
    print_table(header, rows)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--make-keras":
        make_keras(sys.argv[2], Path(sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        runtime, path, threads, tiles, seconds, probs = sys.argv[2:8]
        result = measure(runtime, Path(path), int(threads), np.load(tiles), float(seconds),
                         Path(probs))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="tiny,resnet152", type=lambda s: s.split(","))
    parser.add_argument("--runtimes", default=",".join(RUNTIMES), type=lambda s: s.split(","))
    parser.add_argument("--threads", default="1,2", type=lambda s: [int(t) for t in s.split(",")])
    parser.add_argument("--seconds", type=float, default=8.0, help="per batch size and runtime")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds over the runtimes; the fastest round of each is shown")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="a `train synth` data set to cut the tiles from")
    parser.add_argument("--force", action="store_true",
                        help="export even if the memory looks too small")
    args = parser.parse_args()
    unknown = sorted(set(args.runtimes) - set(RUNTIMES))
    if unknown:
        parser.error(f"unknown runtime {unknown[0]!r}; choose from {', '.join(RUNTIMES)}")
    benchmark(args)


if __name__ == "__main__":
    main()
