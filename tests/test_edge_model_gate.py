"""The line PC runs only gated models: a refused engine and a bare ONNX are refused, unless
model.allow_ungated (commissioning), which is then said loudly in the log, the birth and check."""

from __future__ import annotations

import logging
import shutil

import pytest

from edge.cli import main
from edge.config import parse_config
from edge.errors import ModelError
from edge.inference.model import load_model
from tests.fixtures.broker import Subscriber, wait_until
from tests.fixtures.edge_daemon import (
    daemon_sections,
    frame_with_tiles,
    validate_messages,
    write_config,
    write_frames,
    write_mean_model,
)
from tests.fixtures.reliability import running_daemon


@pytest.fixture
def refused_model(tmp_path):
    """model.onnx with a manifest recording gate.passed false (what build-engine publishes as
    PATH.rejected, renamed back to the engine's name by a hurried technician)."""
    return write_mean_model(tmp_path / "refused", gate=False)


@pytest.fixture
def bare_onnx(tmp_path):
    return write_mean_model(tmp_path / "bare", gate=None)


def test_gate_passed_manifest_loads(mean_model):
    model = load_model(mean_model, "onnxruntime", max_batch=2, threads=1)
    model.close()
    assert model.admission.passed and model.admission.warning is None


def test_manifest_whose_gate_failed_is_refused_with_the_failure_and_the_fix(refused_model):
    with pytest.raises(ModelError) as error:
        load_model(refused_model, "onnxruntime", max_batch=2, threads=1)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{refused_model}: its manifest says the gate did not pass")
    assert "frames scratches F1 0.841 -> 0.700" in message
    assert "convert build-engine" in message and "model.allow_ungated = true" in message


def test_rejected_engine_published_by_build_engine_is_refused(refused_model):
    rejected = refused_model.with_name("model.onnx.rejected")
    shutil.copy(refused_model, rejected)
    shutil.copy(refused_model.with_name("model.onnx.json"), rejected.with_name(
        "model.onnx.rejected.json"))
    with pytest.raises(ModelError, match="gate did not pass"):
        load_model(rejected, "onnxruntime", max_batch=2, threads=1)


def test_bare_onnx_is_refused_and_says_how_to_fix_it(bare_onnx):
    with pytest.raises(ModelError) as error:
        load_model(bare_onnx, "onnxruntime", max_batch=2, threads=1)
    message = str(error.value)
    assert message.startswith(f"{bare_onnx}: no manifest model.onnx.json")
    assert "never gated" in message and "model.allow_ungated = true" in message


def test_allow_ungated_runs_a_bare_onnx_with_a_warning_in_the_log(bare_onnx, caplog):
    with caplog.at_level(logging.WARNING, logger="edge.inference.admission"):
        model = load_model(bare_onnx, "onnxruntime", allow_ungated=True, max_batch=2, threads=1)
    model.close()
    assert not model.admission.passed
    assert "UNGATED MODEL" in model.admission.warning
    assert any("UNGATED MODEL" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)


def test_daemon_refuses_a_refused_engine(tmp_path, mqtt_broker, refused_model):
    images = write_frames(tmp_path / "frames", {"a.png": frame_with_tiles([200])})
    config = parse_config(daemon_sections(tmp_path, mqtt_broker, refused_model, images))
    with pytest.raises(ModelError, match="gate did not pass"), running_daemon(config):
        pass


def test_ungated_daemon_says_so_in_its_birth(tmp_path, mqtt_broker, bare_onnx):
    images = write_frames(tmp_path / "frames", {"a.png": frame_with_tiles([200])})
    sections = daemon_sections(tmp_path, mqtt_broker, bare_onnx, images)
    sections["model"]["allow_ungated"] = True
    config = parse_config(sections)
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, "steel-inspect/#")
    try:
        with running_daemon(config):
            assert wait_until(lambda: subscriber.payloads("/status"))
            assert wait_until(lambda: subscriber.payloads("/defects"))
        validate_messages(subscriber.messages())
        birth = subscriber.payloads("/status")[0]
    finally:
        subscriber.close()
    assert birth["state"] == "online"
    assert birth["gate"]["passed"] is False and "UNGATED MODEL" in birth["gate"]["warning"]


def test_gated_daemon_birth_says_the_gate_passed(tmp_path, mqtt_broker, mean_model):
    images = write_frames(tmp_path / "frames", {"a.png": frame_with_tiles([0])})
    config = parse_config(daemon_sections(tmp_path, mqtt_broker, mean_model, images))
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, "steel-inspect/#")
    try:
        with running_daemon(config):
            assert wait_until(lambda: subscriber.payloads("/status"))
        birth = subscriber.payloads("/status")[0]
    finally:
        subscriber.close()
    assert birth["gate"] == {"passed": True}


def test_check_fails_a_bare_onnx_and_warns_when_it_is_allowed(
    tmp_path, mqtt_broker, bare_onnx, capsys
):
    images = write_frames(tmp_path / "frames", {"a.png": frame_with_tiles([1])})
    sections = daemon_sections(tmp_path, mqtt_broker, bare_onnx, images)
    config = write_config(tmp_path / "edge.toml", sections)
    assert main(["check", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    (model_line,) = [line for line in out.splitlines() if line.startswith("model")]
    assert "FAIL" in model_line and "never gated" in model_line

    sections["model"]["allow_ungated"] = True
    write_config(config, sections)
    assert main(["check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    (warning,) = [line for line in out.splitlines() if "WARNING" in line]
    assert "UNGATED MODEL" in warning and str(bare_onnx) in warning
