"""`train synth`: generate a synthetic Severstal-format data folder (see docs/data.md)."""

from __future__ import annotations

import time


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="output folder (train_images/ + train.csv)")
    parser.add_argument("--images", type=int, required=True, help="number of images")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--width", type=int, default=1600, help="image width (default 1600)")
    parser.add_argument("--height", type=int, default=256, help="image height (default 256)")
    parser.add_argument(
        "--defect-free", type=float, default=0.5, help="fraction of defect-free images (0.5)"
    )


class _Progress:
    """Prints done/total and images/s about every 2 seconds and at the end."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done == total or now - self.last >= 2.0:
            self.last = now
            rate = done / max(now - self.start, 1e-9)
            print(f"  {done}/{total} images, {rate:.1f} images/s", flush=True)


def run(args) -> int:
    from train.data import synth
    from train.data.folder import SeverstalFolder

    progress = _Progress()
    out = synth.generate(
        args.out,
        args.images,
        args.seed,
        width=args.width,
        height=args.height,
        defect_free=args.defect_free,
        progress=progress,
    )
    elapsed = time.perf_counter() - progress.start
    summary = SeverstalFolder.open(out).summary()
    per_class = ", ".join(f"{c['name']} {c['images']}" for c in summary["classes"])
    print(
        f"wrote {args.images} images ({summary['defect_free']} defect-free; {per_class}) "
        f"to {out} in {elapsed:.1f} s ({args.images / elapsed:.1f} images/s)"
    )
    return 0
