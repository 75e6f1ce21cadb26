"""Model packages (convert package -> edge.inference.package): what goes in comes out, the gate
set is exactly what the gate scores from the data folder, and a damaged package is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convert.gate import eval_settings
from convert.gateset import BundledGateSet, FolderGateSet
from convert.tiles import calibration_tiles, open_run_data, tiles_sha256
from edge.cli import main as edge_main
from edge.errors import PackageError
from edge.inference.manifest import file_sha256
from edge.inference.modelcard import ModelCard
from edge.inference.package import open_package
from edge.inference.runtime import load_runtime
from tests.fixtures.packages import edit_index, rewrite_package


def test_round_trip_keeps_the_model_card_and_the_gate_set_of_the_run(
    model_package, exported_run, tmp_path
):
    run = exported_run.path.parent
    package = open_package(model_package)
    folder = package.extract(tmp_path / "out")
    assert file_sha256(folder / "model.onnx") == file_sha256(exported_run.path)
    assert package.card == ModelCard.load(run / "modelcard.json")
    assert package.index["model"]["cam"] is True  # exported with its `cam` output
    card = package.card
    data, splits = open_run_data(card, run)
    bundled = BundledGateSet.load(folder / "gate.npz")
    assert bundled.image_ids == [str(i) for i in splits["test"]]
    with load_runtime("onnxruntime", exported_run.path, max_batch=64, threads=2) as runtime:
        from_folder = FolderGateSet(data, splits, eval_settings(card))
        expected, got = from_folder.score_test(runtime.infer_all), bundled.score_test(
            runtime.infer_all)
        for view in ("crops", "frames"):  # the same tiles, labels and scores, bit for bit
            assert np.array_equal(expected[view].labels, got[view].labels)
            assert np.array_equal(expected[view].scores, got[view].scores)
        validation = from_folder.score_validation(runtime.infer_all)
        assert np.array_equal(validation.scores, bundled.score_validation(runtime.infer_all).scores)
    calibration = package.index["calibration"]
    with np.load(folder / "calibration.npz") as arrays:
        tiles = arrays["tiles"]
    assert tiles_sha256(tiles) == calibration["data_sha256"]
    assert tiles_sha256(calibration_tiles(data, splits, len(tiles))) == calibration["data_sha256"]
    assert calibration["images"] == min(128, len(splits["train"]))
    print(f"package: {model_package.stat().st_size / 2**20:.1f} MiB, "
          f"{package.index['gate_set']}, {calibration['tiles']} calibration tiles")


def _flip_a_byte(name: str, data: bytes) -> bytes:
    if name != "model.onnx":
        return data
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


@pytest.mark.parametrize("damage, message", [
    (lambda src, dst: rewrite_package(src, dst, _flip_a_byte),
     "member model.onnx does not match its sha256 in package.json"),
    (lambda src, dst: rewrite_package(src, dst, lambda n, d: None if n == "gate.npz" else d),
     "missing member gate.npz"),
    (lambda src, dst: edit_index(src, dst, lambda index: index.update(format_version=2)),
     "package format_version 2 is unknown"),
    (lambda src, dst: rewrite_package(src, dst, lambda n, d: None if n == "package.json" else d),
     "missing member package.json"),
], ids=["tampered-member", "missing-member", "unknown-version", "missing-index"])
def test_damaged_package_is_refused_with_one_line(model_package, tmp_path, capsys, damage,
                                                  message):
    broken = damage(model_package, tmp_path / "broken.sipkg")
    with pytest.raises(PackageError, match=message):
        open_package(broken)
    capsys.readouterr()
    code = edge_main(["model", "install", str(broken), "--store", str(tmp_path / "store")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "store" / "current").exists()


def test_an_index_without_a_required_member_or_not_a_tar_is_refused(model_package, tmp_path):
    index_only = edit_index(model_package, tmp_path / "unlisted.sipkg",
                            lambda index: index["members"].pop("calibration.npz"))
    with pytest.raises(PackageError, match="lists no member calibration.npz"):
        open_package(index_only)
    not_a_tar = tmp_path / "text.sipkg"
    not_a_tar.write_text(json.dumps({"format": "steel-inspect-model-package"}))
    with pytest.raises(PackageError, match="cannot read it as tar"):
        open_package(not_a_tar)


def test_a_package_cut_in_half_is_a_one_line_error(model_package, tmp_path, capsys):
    cut = tmp_path / "cut.sipkg"
    data = model_package.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(PackageError, match=r"cut\.sipkg: truncated or damaged .*copy it again"):
        open_package(cut)
    assert edge_main(["model", "install", str(cut), "--store", str(tmp_path / "store")]) == 2
    assert "truncated or damaged" in capsys.readouterr().err
