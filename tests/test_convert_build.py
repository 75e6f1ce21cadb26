"""`convert build-engine --backend onnxruntime`: candidates, the F1 gate, the manifest, refusals."""

from __future__ import annotations

import json
import re

import onnx
import pytest

from convert.cam import sigmoid_of_mean
from convert.onnx_graph import graph_outputs, head_nodes
from edge.errors import ModelError
from edge.inference.cpuflags import cpu_flags, int8_reduce_range
from edge.inference.manifest import file_sha256
from edge.inference.model import load_model
from edge.inference.modelcard import ModelCard
from tests.fixtures.convert import THREADS, copy_run, negate_head, run_convert, tile_batch

COMMON = ("--backend", "onnxruntime", "--threads", THREADS)


def build(capsys, run, out, precision, *extra):
    return run_convert(capsys, "build-engine", "--run", run, "--out", out,
                       "--precision", precision, *COMMON, *extra)


def test_fp32_passes_and_writes_the_manifest(exported_run, tmp_path, capsys):
    run = exported_run.path.parent
    out = tmp_path / "engines" / "model-fp32.onnx"
    result = build(capsys, run, out, "fp32")
    assert result.code == 0, result.err
    assert "verdict: PASS" in result.out
    manifest = json.loads((tmp_path / "engines" / "model-fp32.onnx.json").read_text())
    card = ModelCard.load(run / "modelcard.json")
    assert manifest["manifest_version"] == 1
    assert ModelCard.from_dict(manifest["card"]) == card
    assert manifest["onnx_sha256"] == file_sha256(exported_run.path)
    assert manifest["engine_sha256"] == file_sha256(out) == file_sha256(exported_run.path)
    assert manifest["backend"] == "onnxruntime" and manifest["backend_version"]
    assert manifest["gpu"] is None
    assert (manifest["requested_precision"], manifest["effective_precision"]) == ("fp32", "fp32")
    assert manifest["input"] == {"name": "image", "dtype": "uint8", "shape": ["N", 256, 256, 1],
                                 "host_dtype": "uint8", "host_cast": None}
    assert manifest["output"] == {"name": "probabilities", "dtype": "float32",
                                  "shape": ["N", len(card.classes)]}
    assert manifest["cam"] == {"name": "cam", "dtype": "float32", "precision": "fp32",
                               "shape": ["N", len(card.classes), 8, 8]}
    assert manifest["max_batch"] == 8 and manifest["opt_batch"] == 7
    assert manifest["classes"] == card.class_names
    assert manifest["thresholds"] == card.thresholds
    gate = manifest["gate"]
    assert gate["passed"] is True and gate["max_f1_drop"] == 0.01
    reference = gate["rows"]["crops"]["keras (model card)"]
    assert reference[:-1] == [c["f1"] for c in card.metrics["test"]["crops"]["classes"]]
    # the ONNX itself reproduces training's own evaluation: same tiles, same F1
    assert gate["rows"]["crops"]["onnxruntime fp32"] == pytest.approx(reference, abs=1e-9)
    loaded = load_model(out, "onnxruntime", max_batch=4, threads=1)
    assert loaded.thresholds == card.thresholds
    assert loaded.runtime.infer(tile_batch(3)).shape == (3, len(card.classes))
    loaded.close()


def test_fp16_passes_with_an_fp32_head_and_output(exported_run, tmp_path, capsys):
    out = tmp_path / "model-fp16.onnx"
    result = build(capsys, exported_run.path.parent, out, "fp16")
    assert result.code == 0, result.out + result.err
    model = onnx.load(str(out))
    assert graph_outputs(model)[0].dtype == "float32"
    weights = {i.name: i for i in model.graph.initializer}
    conv_types = {weights[n.input[1]].data_type for n in model.graph.node
                  if n.op_type == "Conv" and not n.name.startswith("cam/")}
    assert conv_types == {onnx.TensorProto.FLOAT16}
    nodes = {n.name: n for n in model.graph.node}
    matmul = next(nodes[h] for h in head_nodes(model) if nodes[h].op_type in ("MatMul", "Gemm"))
    assert weights[matmul.input[1]].data_type == onnx.TensorProto.FLOAT
    # the class activation map is computed like the head, in FP32, and stays an FP32 output
    assert weights[nodes["cam/conv"].input[1]].data_type == onnx.TensorProto.FLOAT
    assert [(o.name, o.dtype) for o in graph_outputs(model)][1] == ("cam", "float32")
    loaded = load_model(out, "onnxruntime", max_batch=4, threads=1)
    probabilities, cam = loaded.runtime.infer_with_cam(tile_batch(4))
    loaded.close()
    assert abs(sigmoid_of_mean(cam) - probabilities).max() < 5e-3  # 1.1e-3 measured
    manifest = json.loads(out.with_name(out.name + ".json").read_text())
    assert manifest["effective_precision"] == "fp16"
    assert "onnx fp32" in manifest["gate"]["rows"]["frames"]


def test_int8_gate_is_reported_honestly(exported_run, tmp_path, capsys):
    out = tmp_path / "model-int8.onnx"
    result = build(capsys, exported_run.path.parent, out, "int8", "--calib-images", 4,
                   "--no-onnx-row")
    assert result.code in (0, 3), result.err
    assert "F1 gate on the test split" in result.out and "onnxruntime int8" in result.out
    assert "onnx fp32" not in result.out  # --no-onnx-row
    passed = "verdict: PASS" in result.out
    assert passed == (result.code == 0)
    written = out if passed else out.with_name(out.name + ".rejected")
    manifest = json.loads(written.with_name(written.name + ".json").read_text())
    assert manifest["gate"]["passed"] is passed
    calibration = manifest["calibration"]
    assert calibration["split"] == "train" and calibration["tiles"] == 4 * 7
    assert calibration["images"] == calibration["requested_images"] == 4
    assert (tmp_path / re.sub(r".*/", "", calibration["cache"])).is_file()
    model = onnx.load(str(written))
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    nodes = {n.name: n for n in model.graph.node}
    assert nodes["cam/conv"].op_type == "Conv"  # not quantised: nodes_to_exclude kept it FP32
    assert [(o.name, o.dtype) for o in graph_outputs(model)][1] == ("cam", "float32")


def test_int8_decision_is_paired_with_the_onnx_and_explained(exported_run, tmp_path, capsys):
    out = tmp_path / "model-int8.onnx"
    result = build(capsys, exported_run.path.parent, out, "int8", "--calib-images", 4)
    assert result.code in (0, 3), result.err
    written = out if result.code == 0 else out.with_name(out.name + ".rejected")
    manifest = json.loads(written.with_name(written.name + ".json").read_text())
    gate = manifest["gate"]
    reduce_range, why = int8_reduce_range(cpu_flags())  # this CPU's: VNNI gets 8-bit weights
    assert manifest["calibration"]["reduce_range"] is reduce_range
    assert manifest["calibration"]["reduce_range_reason"] == why
    assert why in manifest["precision_notes"]
    card = ModelCard.load(exported_run.path.parent / "modelcard.json")
    assert gate["decision"] == "paired vs onnx fp32"
    columns = [*card.class_names, "defect-free"]
    refused = []
    for view in ("crops", "frames"):
        paired = gate["paired"][view]
        assert [c["column"] for c in paired] == columns
        for c in paired:
            low, high = c["diff_interval"]
            assert low <= c["candidate_f1"] - c["reference_f1"] + 1e-9 and low <= high
            assert c["n"] == gate["sizes"][view] and c["reason"]
            line = f"  {view} {c['column']}: +{c['flips_to_present']}/-{c['flips_to_absent']} "
            assert line in result.out  # every decision is printed with its reason
            if c["refused"]:
                refused.append((view, c["column"]))
    print(next(ln for ln in result.out.splitlines() if ln.startswith("paired with")))
    print("\n".join(ln for ln in result.out.splitlines() if ln.startswith("  crops ")
                    or ln.startswith("  frames ")))
    onnx_failures = [f for f in gate["failures"] if not f.get("reason")]
    assert gate["passed"] is (not refused and not onnx_failures)
    assert {(f["view"], f["column"]) for f in gate["failures"]} >= set(refused)


def test_broken_candidate_fails_with_exit_3_and_nothing_at_path(exported_run, tmp_path, capsys):
    run = copy_run(exported_run.path.parent, tmp_path / "run")
    negate_head(exported_run.path, run / "model.onnx")
    out = tmp_path / "model.onnx"
    out.write_bytes(b"an engine an earlier build left here")
    out.with_name("model.onnx.json").write_text("{}")
    result = build(capsys, run, out, "fp32")
    assert result.code == 3
    assert not out.exists() and not out.with_name("model.onnx.json").exists()
    rejected = tmp_path / "model.onnx.rejected"
    assert rejected.is_file() and rejected.with_name(rejected.name + ".json").is_file()
    (line,) = result.err.strip().splitlines()
    assert line.startswith("convert build-engine: error: gate failed for ")
    failing = line.split("gate failed for ")[1].split(" (max F1 drop")[0].split(", ")
    card = ModelCard.load(run / "modelcard.json")
    assert set(failing) <= {*card.class_names, "defect-free"}
    (verdict,) = [ln for ln in result.out.splitlines() if ln.startswith("verdict:")]
    assert verdict.startswith("verdict: FAIL") and all(name in verdict for name in failing)
    assert " FAIL" in result.out.split("verdict")[0]  # the drop row marks the failing cells
    # the line PC refuses the refused engine, also under its old name
    for candidate in (rejected, tmp_path / "renamed.onnx"):
        if candidate != rejected:
            candidate.write_bytes(rejected.read_bytes())
            candidate.with_name("renamed.onnx.json").write_bytes(
                rejected.with_name(rejected.name + ".json").read_bytes())
        with pytest.raises(ModelError, match="the gate did not pass .*refused: "):
            load_model(candidate, "onnxruntime", max_batch=2, threads=1)


def test_calibration_records_the_images_there_really_were(exported_run, tmp_path, caplog):
    from convert.build import BuildOptions, _calibration  # noqa: PLC0415
    from convert.tiles import open_run_data  # noqa: PLC0415

    run = exported_run.path.parent
    card = ModelCard.load(run / "modelcard.json")
    folder, splits = open_run_data(card, run, None)
    available = len(splits["train"])
    opts = BuildOptions(run=run, out=tmp_path / "e.onnx", precision="int8",
                        backend="onnxruntime", calib_images=available + 1000)
    tiles, info = _calibration(opts, folder, splits, "0" * 64)
    assert info["images"] == available and info["requested_images"] == available + 1000
    assert info["tiles"] == len(tiles) == available * 7
    assert f"the training split has only {available} images" in caplog.text
    small = BuildOptions(run=run, out=tmp_path / "e.onnx", precision="int8",
                         backend="onnxruntime", calib_images=2)
    caplog.clear()
    _calibration(small, folder, splits, "0" * 64)
    assert "INT8 calibration on only 14 tiles (2 images)" in caplog.text


def test_precision_defaults_to_fp16_only_on_gpus():
    from convert.commands.build_engine import default_precision  # noqa: PLC0415

    assert default_precision("tensorrt") == "fp16"
    assert default_precision("onnxruntime") == "fp32"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--precision", "fp8"], "invalid choice: 'fp8'"),
        (["--backend", "openvino"], "invalid choice: 'openvino'"),
        (["--max-batch", "0"], "must be >= 1"),
        (["--max-f1-drop", "2"], "in [0, 1]"),
        (["--calib-images", "many"], "not an integer"),
    ],
)
def test_bad_flags_are_refused(tmp_path, capsys, argv, message):
    result = run_convert(capsys, "build-engine", "--run", tmp_path, "--out", tmp_path / "e", *argv)
    assert result.code == 2 and message in result.err


def test_missing_inputs_give_one_line_errors(exported_run, tmp_path, capsys):
    missing = build(capsys, tmp_path / "nope", tmp_path / "e.onnx", "fp32")
    no_onnx = copy_run(exported_run.path.parent, tmp_path / "no-onnx")
    (no_onnx / "model.onnx").unlink()
    not_exported = build(capsys, no_onnx, tmp_path / "e.onnx", "fp32")
    for result, message in ((missing, "run folder not found"),
                            (not_exported, "run convert export-onnx first")):
        assert result.code == 2
        (line,) = result.err.strip().splitlines()
        assert message in line and line.startswith("convert build-engine: error:")


@pytest.mark.parametrize("name", ["model.onnx", "modelcard.json"])
def test_out_that_would_overwrite_the_run_is_refused(exported_run, tmp_path, capsys, name):
    run = copy_run(exported_run.path.parent, tmp_path / "run")
    before = file_sha256(run / name)
    result = build(capsys, run, run / name, "fp32")
    assert result.code == 2 and "Traceback" not in result.err
    (line,) = result.err.strip().splitlines()
    assert line.startswith("convert build-engine: error: ")
    assert f"--out would overwrite the run's {name}" in line
    assert file_sha256(run / name) == before


def test_wrong_model_is_refused_before_building(exported_run, tmp_path, capsys):
    run = copy_run(exported_run.path.parent, tmp_path / "run")
    raw = json.loads((run / "modelcard.json").read_text())
    raw["classes"].append({"id": len(raw["classes"]) + 1, "name": "extra"})
    raw["thresholds"].append(0.5)
    (run / "modelcard.json").write_text(json.dumps(raw))
    result = build(capsys, run, tmp_path / "e.onnx", "fp32")
    assert result.code == 2
    assert "does not match the model card" in result.err
    assert not list(tmp_path.glob("e.onnx*"))


def test_tensorrt_backend_without_tensorrt_names_the_extra(exported_run, tmp_path, capsys):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is importable here; tests/test_tensorrt.py covers it")
    except ImportError:
        pass
    result = run_convert(capsys, "build-engine", "--run", exported_run.path.parent,
                         "--out", tmp_path / "e.plan")
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert "tensorrt is not importable" in line and "pip install steel-inspect[tensorrt]" in line
    assert "8.6.1" in line and ">= 10" in line
    assert not list(tmp_path.glob("e.plan*"))


def test_calibration_tiles_have_the_cards_tile_size():
    """A 128 px model calibrates on 128 px tiles, cut as the line cuts them (not 256 px ones)."""
    import types  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from convert.build import calibration_set  # noqa: PLC0415

    folder = types.SimpleNamespace(read_image=lambda image_id: np.zeros((256, 1600), np.uint8))
    tiles, images = calibration_set(folder, {"train": ["a", "b"]}, 1, tile=128)
    assert tiles.shape[1:] == (128, 128, 1) and images == 1
    assert calibration_set(folder, {"train": ["a"]}, 1)[0].shape[1:] == (256, 256, 1)
