"""Training input pipeline alone vs the train step it feeds, in crops (images) per second.

    .venv/bin/python benchmarks/bench_train_pipeline.py [--data DIR] [--images 96]
        [--batch-size 32] [--batches 40] [--threads 2] [--skip-resnet] [--resnet resnet50]

Without --data, a synthetic 1600x256 folder of --images images is generated in a temporary
folder. Rows: decoding the split into memory; the numpy crop+label+augment function alone; the
whole tf.data pipeline (parallel map + prefetch) drained as fast as possible; and one
forward+backward train step (synthetic batch, no input pipeline) for `tiny` and a ResNet
(`--resnet`, default `resnet152`).
The pipeline keeps a model fed when its rate is well above the train step's.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(fn, repeats: int) -> float:
    """Seconds per call of fn (one warm-up call first)."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def pipeline_rows(data: Path, batch: int, batches: int) -> list[tuple[str, float, str]]:
    from train.data.folder import SeverstalFolder
    from train.data.splits import make_splits
    from train.pipeline import CropPlanner, CropSource, PipelineConfig, train_dataset

    folder = SeverstalFolder.open(data)
    train_ids = make_splits(folder, 0)["train"]
    config = PipelineConfig(batch_size=batch, oversample=1.0, defect_focus=0.5)
    start = time.perf_counter()
    source = CropSource(folder, train_ids, config)
    load_rate = len(train_ids) / (time.perf_counter() - start)
    plans = CropPlanner(source, config).batches()
    numpy_rate = batch / timed(lambda: source.crop_batch(next(plans)), batches)
    iterator = iter(train_dataset(source, config))
    pipeline_rate = batch / timed(lambda: next(iterator), batches)
    return [
        (f"decode {len(train_ids)} images into memory (once)", load_rate, "images/s"),
        ("crop + label + augment, numpy, 1 thread", numpy_rate, "crops/s"),
        ("tf.data pipeline (parallel map, prefetch)", pipeline_rate, "crops/s"),
    ]


def train_step_row(arch: str, batch: int, steps: int) -> tuple[str, float, str]:
    import keras

    from train.losses import focal_loss
    from train.models import build_model

    model = build_model(arch, 3)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=focal_loss())
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, (batch, 256, 256, 1), dtype=np.uint8)
    labels = (rng.random((batch, 3)) < 0.2).astype(np.float32)
    seconds = timed(lambda: model.train_on_batch(tiles, labels), steps)
    return (f"{arch} train step (forward+backward), batch {batch}", batch / seconds, "crops/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-resnet", action="store_true")
    parser.add_argument("--resnet", default="resnet152",
                        choices=("resnet50", "resnet101", "resnet152"))
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from train.fit import configure_tensorflow

    configure_tensorflow(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from train.data.synth import generate

            data = generate(Path(tmp) / "synth", args.images, seed=1)
        rows = pipeline_rows(data, args.batch_size, args.batches)
    rows.append(train_step_row("tiny", args.batch_size, 10))
    if not args.skip_resnet:
        rows.append(train_step_row(args.resnet, 4, 2))

    print(f"Training input pipeline ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, TF threads {args.threads or 'all'})")
    print(f"| {'stage':<55} | {'rate':>9} | {'unit':<8} |")
    print(f"|{'-' * 57}|{'-' * 11}|{'-' * 10}|")
    for name, rate, unit in rows:
        print(f"| {name:<55} | {rate:>9.1f} | {unit:<8} |")


if __name__ == "__main__":
    main()
