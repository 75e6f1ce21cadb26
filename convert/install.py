"""Build and gate an engine from a model package, on the machine that will run it.

`edge model install` calls `build_from_package` (lazily: the daemon never imports convert). It is
`convert build-engine` with the package in place of the run folder: the ONNX and card come from
the package, the gate scores the bundled gate set instead of the data folder, and INT8 calibrates
on the bundled training-split tiles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convert.build import BuildOptions, BuildOutcome, build_gate_publish, calibration_record
from convert.gateset import BundledGateSet
from convert.onnx_graph import check_contract, load_onnx
from edge.errors import PackageError
from edge.inference.manifest import file_sha256
from edge.inference.package import CALIBRATION_MEMBER, GATE_MEMBER, ONNX_MEMBER, ModelPackage


def build_from_package(package: ModelPackage, workdir: Path, opts: BuildOptions) -> BuildOutcome:
    """Extract `package` into workdir/package, build opts.out from it and gate it.

    opts.run and opts.data are ignored; opts.out should lie in `workdir`.
    """
    if opts.backend == "tensorrt":
        from convert.tensorrt import require_tensorrt  # noqa: PLC0415

        require_tensorrt()
    source = package.extract(Path(workdir) / "package")
    onnx_path = source / ONNX_MEMBER
    check_contract(load_onnx(onnx_path), package.card, onnx_path)
    gate_set = BundledGateSet.load(source / GATE_MEMBER)
    calib = None
    if opts.precision == "int8":
        tiles = _calibration_tiles(source / CALIBRATION_MEMBER)
        images = int(package.index.get("calibration", {}).get("images", 0))
        opts.calib_images = images
        record = calibration_record(opts, tiles, images, file_sha256(onnx_path))
        calib = (tiles, {**record, "source": f"package {package.version}"})
    return build_gate_publish(opts, package.card, onnx_path, gate_set, calib)


def _calibration_tiles(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as data:
            tiles = data["tiles"]
    except (OSError, ValueError, KeyError) as exc:
        raise PackageError(f"{path}: cannot read the calibration tiles: {exc}") from None
    if tiles.dtype != np.uint8 or tiles.ndim != 4 or not len(tiles):
        raise PackageError(f"{path}: calibration tiles must be uint8 [n, h, w, c], got "
                           f"{tiles.dtype} {tiles.shape}")
    return tiles
