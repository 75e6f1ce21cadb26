"""`convert package --run RUN_DIR --out NAME.sipkg`: the model, its card, gate set and INT8
calibration tiles in one content-hashed file for `edge model install` on the line PCs."""

from __future__ import annotations

from pathlib import Path

from edge.argtypes import positive_int


def add_arguments(parser) -> None:
    from convert.package import DEFAULT_CALIB_IMAGES  # noqa: PLC0415

    parser.add_argument("--run", required=True, type=Path,
                        help="run folder with modelcard.json and model.onnx (convert export-onnx)")
    parser.add_argument("--out", required=True, type=Path, help="package file to write (.sipkg)")
    parser.add_argument("--data", type=Path, default=None,
                        help="data folder, if it moved since training (default: the card's)")
    parser.add_argument("--calib-images", type=positive_int, default=DEFAULT_CALIB_IMAGES,
                        help="training-split images whose tiles go into the package for INT8 "
                             f"calibration (default {DEFAULT_CALIB_IMAGES})")


def run(args) -> int:
    from convert.package import write_package  # noqa: PLC0415

    result = write_package(args.run, args.out, args.data, args.calib_images)
    gate, calib = result.index["gate_set"], result.index["calibration"]
    size = result.path.stat().st_size / 2**20
    print(f"wrote {result.path} ({size:.1f} MiB, sha256 of its index {result.digest[:12]})")
    print(f"model {result.index['model']['name']} {result.index['model']['version']}: installs "
          f"as version {result.version}")
    print(f"gate set: {gate['crops']} test crops, {gate['frames']} test frames "
          f"({gate['frame_tiles']} tiles), {gate['validation_crops']} validation crops")
    print(f"INT8 calibration: {calib['tiles']} tiles of {calib['images']} training images")
    return 0
