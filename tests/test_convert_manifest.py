"""edge.inference.manifest: an engine is refused on another TensorRT, GPU or ONNX (no TensorRT
needed:
the platform is injected)."""

from __future__ import annotations

import json

import pytest

from edge.errors import ModelError
from edge.inference.manifest import (
    MANIFEST_VERSION,
    Platform,
    capability_problem,
    check_manifest,
    file_sha256,
    mismatches,
)
from edge.inference.model import load_model

GTX1060 = Platform("8.6.1", "NVIDIA GeForce GTX 1060 6GB", "6.1")


@pytest.fixture
def engine(tmp_path):
    """A fake engine file, a source ONNX file and the manifest that matches them on GTX1060."""
    path = tmp_path / "model.plan"
    path.write_bytes(b"serialized engine bytes")
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(b"onnx bytes")
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "engine_sha256": file_sha256(path),
        "backend": "tensorrt",
        **GTX1060.as_manifest(),
        "onnx_path": str(onnx_path),
        "onnx_sha256": file_sha256(onnx_path),
        "gate": {"passed": True},
    }
    return path, onnx_path, manifest


def test_matching_platform_is_accepted(engine):
    path, _, manifest = engine
    check_manifest(manifest, path, platform=GTX1060)
    check_manifest(manifest, path, platform=Platform("8.6.1.post1", GTX1060.gpu_name, "6.1"))


@pytest.mark.parametrize(
    ("platform", "reason"),
    [
        (Platform("10.3.0", GTX1060.gpu_name, "6.1"),
         "built with TensorRT 8.6.1, this machine has 10.3.0"),
        (Platform("8.6.2", GTX1060.gpu_name, "6.1"), "this machine has 8.6.2"),
        (Platform("8.6.1", "NVIDIA GeForce RTX 3060", "8.6"),
         "built for GPU 'NVIDIA GeForce GTX 1060 6GB' (SM 6.1), this machine has "
         "'NVIDIA GeForce RTX 3060' (SM 8.6)"),
        (Platform("8.6.1", GTX1060.gpu_name, "7.5"), "this machine has"),
    ],
)
def test_other_tensorrt_or_gpu_is_refused(engine, platform, reason):
    path, _, manifest = engine
    with pytest.raises(ModelError) as error:
        check_manifest(manifest, path, platform=platform)
    message = str(error.value)
    assert reason in message and message.endswith("rebuild with convert build-engine")
    assert "\n" not in message


def test_both_mismatches_are_named_together(engine):
    _, _, manifest = engine
    problems = mismatches(manifest, Platform("10.0.1", "Tesla T4", "7.5"))
    assert len(problems) == 2


def test_changed_engine_file_is_refused(engine):
    path, _, manifest = engine
    path.write_bytes(b"another engine")
    with pytest.raises(ModelError, match="does not match its manifest .*rebuild with convert"):
        check_manifest(manifest, path, platform=GTX1060)


def test_changed_onnx_is_refused(engine, tmp_path):
    path, onnx_path, manifest = engine
    onnx_path.write_bytes(b"re-exported onnx")
    with pytest.raises(ModelError, match="built from ONNX sha256 .*rebuild with convert"):
        check_manifest(manifest, path, platform=GTX1060)
    other = tmp_path / "other.onnx"
    other.write_bytes(b"onnx bytes")  # same bytes as the original: accepted
    check_manifest(manifest, path, platform=GTX1060, onnx_path=other)


def test_absent_onnx_is_not_required_on_the_line_pc(engine):
    path, onnx_path, manifest = engine
    onnx_path.unlink()
    check_manifest(manifest, path, platform=GTX1060)


def test_other_manifest_version_is_refused(engine):
    path, _, manifest = engine
    with pytest.raises(ModelError, match="manifest_version 99"):
        check_manifest({**manifest, "manifest_version": 99}, path, platform=GTX1060)


def test_capability_rules():
    assert capability_problem("8.6.1", "6.1") is None
    assert capability_problem("10.3.0", "7.5") is None
    problem = capability_problem("10.3.0", "6.1")
    assert "needs >= 7.5" in problem and "TensorRT 8.6.1" in problem
    assert "too old" in capability_problem("8.6.1", "3.7")
    assert capability_problem("10.16.1.11", "8.9") is None
    problem = capability_problem("11.4.0.106", "8.9")  # installed against the cap
    assert "11.4.0.106 is not supported" in problem and "'tensorrt>=10,<11'" in problem


def test_load_model_probes_this_machine(engine, tmp_path):
    """Through edge.inference.model: without tensorrt here, the refusal names the extra to
    install."""
    path, _, manifest = engine
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is importable here")
    except ImportError:
        pass
    path.with_name(path.name + ".json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=r"pip install steel-inspect\[tensorrt\]"):
        load_model(path, "tensorrt")
    path.with_name(path.name + ".json").unlink()
    with pytest.raises(ModelError, match="no manifest .*rebuild with convert build-engine"):
        load_model(path, "tensorrt")


def test_fast_precision_rule_when_tensorrt_has_no_builder_properties():
    from convert.tensorrt.builder import fast_precisions

    class OldBuilder:
        platform_has_fast_fp16 = False
        platform_has_fast_int8 = True

    assert fast_precisions(OldBuilder(), "8.6") == (False, True)  # the builder's own answer wins
    assert fast_precisions(object(), "6.1") == (False, True)  # GTX 10xx: DP4A, no fast FP16
    assert fast_precisions(object(), "6.0") == (True, False)  # P100
    assert fast_precisions(object(), "7.5") == (True, True)
