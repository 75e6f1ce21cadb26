"""`train explain`: Grad-CAM maps of every class over a whole frame (paper section 5)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run folder written by `train fit`")
    parser.add_argument("--image", required=True, help="grayscale image (any size >= 256x256)")
    parser.add_argument("--out", default=None,
                        help="PNG to write (default RUN/explain/IMAGE-gradcam.png)")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow CPU threads (0: all)")


def default_output(run: Path, image: Path) -> Path:
    """Inside the run folder: never beside the image, where it would change the data's hash."""
    from train.rundir import EXPLAIN_DIR  # noqa: PLC0415

    return run / EXPLAIN_DIR / f"{image.stem}-gradcam.png"


def run(args) -> int:
    from train.explain import explain_image  # noqa: PLC0415
    from train.fit import configure_tensorflow  # noqa: PLC0415

    configure_tensorflow(args.threads)
    image = Path(args.image)
    out = Path(args.out) if args.out else default_output(Path(args.run), image)
    out.parent.mkdir(parents=True, exist_ok=True)
    explain_image(Path(args.run), image, out)
    print(f"written to {out}")
    return 0
