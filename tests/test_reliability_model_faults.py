"""A model that returns NaN, inf or values above 1 is a model fault, never "no defects"."""

from __future__ import annotations

import logging
import math
import re
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from edge.commands.check import run as check_run
from edge.commands.run import run_daemon
from edge.config import parse_config
from edge.daemon import Daemon
from edge.delivery.outbox import Outbox
from edge.errors import ModelError, ModelFault
from edge.inference.model import load_model
from edge.inference.pipeline import Pipeline
from edge.inference.runtime import load_runtime
from edge.inference.runtime.outputs import checked_probabilities
from edge.schemas import encode_payload
from tests.fixtures.broker import wait_until
from tests.fixtures.edge_daemon import (
    daemon_sections,
    frame_with_tiles,
    validate_messages,
    write_config,
    write_frames,
)
from tests.fixtures.faulty_model import bright_tiles, write_faulty_model
from tests.fixtures.reliability import running_daemon


@pytest.mark.parametrize(
    "value, message",
    [(math.nan, "1 NaN of 6 values"), (math.inf, "1 infinite"), (-math.inf, "1 infinite"),
     (1.5, "1 outside [0, 1] of 6 values (2 tiles), e.g. 1.5"), (-0.01, "outside [0, 1]")],
)
def test_invalid_outputs_are_a_one_line_fault(value, message):
    outputs = np.full((2, 3), 0.5, np.float32)
    outputs[1, 2] = value
    with pytest.raises(ModelFault, match=re.escape(message)) as info:
        checked_probabilities(outputs, 2, 3)
    assert "\n" not in str(info.value)


def test_outputs_a_rounding_step_past_the_range_are_clipped_and_shape_is_checked():
    outputs = np.array([[1.000001, -0.000001, 0.25]], np.float32)
    checked = checked_probabilities(outputs, 1, 3)
    assert checked.tolist() == [[1.0, 0.0, 0.25]]
    with pytest.raises(ModelFault, match=r"shape \(1, 3\); expected \(2, 3\)"):
        checked_probabilities(outputs, 2, 3)


@pytest.mark.parametrize("fault, message", [("nan", "NaN"), ("inf", "infinite"),
                                            ("above-one", "outside [0, 1]")])
def test_onnxruntime_outputs_are_checked_for_every_caller(tmp_path, fault, message):
    path = write_faulty_model(tmp_path, fault)
    with load_runtime("onnxruntime", path, max_batch=4, threads=1) as runtime:  # warm-up passes
        assert runtime.infer_all(np.zeros((3, 256, 256, 1), np.uint8)).max() == 0.0
        with pytest.raises(ModelFault, match=re.escape(message)):
            runtime.infer_all(bright_tiles(5))  # a second chunk of 1 after the first of 4


@pytest.mark.parametrize("fault, reason", [("always-nan", "model output invalid: 24 NaN"),
                                           ("crash", "onnxruntime warm-up failed: ")])
def test_a_model_that_fails_its_warm_up_is_a_one_line_error(tmp_path, fault, reason):
    path = write_faulty_model(tmp_path, fault)
    with pytest.raises(ModelError) as info:
        load_model(path, "onnxruntime", max_batch=8, threads=1)
    message = str(info.value)
    assert message.startswith(f"{path}: onnxruntime warm-up failed: ") and reason in message
    assert "\n" not in message and "Traceback" not in message


def test_daemon_counts_model_faults_shows_them_and_logs_at_a_limited_rate(
    tmp_path, mqtt_broker, mqtt_subscriber, caplog
):
    model = write_faulty_model(tmp_path / "model", "nan")
    count = 20
    frames = {f"{i:02d}.png": frame_with_tiles([255, 0]) for i in range(count)}
    images = write_frames(tmp_path / "frames", frames)
    config = parse_config(daemon_sections(tmp_path, mqtt_broker, model, images))
    caplog.set_level(logging.WARNING, logger="edge.inference.pipeline")
    with running_daemon(config, lossless=True) as daemon:
        assert wait_until(lambda: daemon.stats.model_faults == count, timeout=20), \
            daemon.status_line()
        assert daemon.status_line().startswith(f"MODEL FAULTS {count}, frames 0/{count}")
        assert wait_until(lambda: any(s.get("model_faults") == count
                                      for s in mqtt_subscriber.payloads("/stats")), timeout=10)
    stats = [s for s in mqtt_subscriber.payloads("/stats") if s["model_faults"] == count][-1]
    assert stats["frames_failed"] == count and stats["events"] == 0
    assert mqtt_subscriber.payloads("/defects") == []
    validate_messages(mqtt_subscriber.messages())
    faults = [r.getMessage() for r in caplog.records if "MODEL FAULT" in r.getMessage()]
    assert 1 <= len(faults) <= 2, faults  # one per 10 s, with the count of the ones held back
    assert "frame not inspected: model output invalid: 3 NaN of 6 values" in faults[0]


def test_the_retained_status_says_model_fault_with_its_reason_and_clears(
    tmp_path, mqtt_broker, mqtt_subscriber
):
    model = write_faulty_model(tmp_path / "model", "nan")  # valid on black tiles only
    frames = {f"{i:02d}.png": frame_with_tiles([255, 0]) for i in range(5)}
    frames |= {f"{i:02d}.png": frame_with_tiles([0, 0]) for i in range(5, 10)}
    images = write_frames(tmp_path / "frames", frames)
    config = parse_config(daemon_sections(tmp_path, mqtt_broker, model, images))

    def states():
        return [s for s in mqtt_subscriber.payloads("/status") if s["state"] == "online"]

    with running_daemon(config, lossless=True) as daemon:
        assert wait_until(lambda: daemon.stats.frames_processed == 5, timeout=20)
        assert wait_until(lambda: [s["model_state"] for s in states()][-2:] == ["fault", "ok"],
                          timeout=10), [s["model_state"] for s in states()]
    births = states()
    assert births[0]["model_state"] == "ok" and births[0]["model_fault"] is None
    fault = next(s for s in births if s["model_state"] == "fault")
    assert fault["model_fault"]["reason"] == "model output invalid: 3 NaN of 6 values (2 tiles)"
    assert fault["model_fault"]["since"] <= fault["ts"]
    assert births[-1]["model_fault"] is None
    retained = [m for m in mqtt_subscriber.messages("/status") if m.retain]
    validate_messages(mqtt_subscriber.messages())
    assert len(retained) <= 1  # only a late subscriber gets the retained copy


def test_edge_check_runs_one_real_inference_and_fails_on_a_faulty_model(
    tmp_path, mqtt_broker, capsys
):
    model = write_faulty_model(tmp_path / "model", "above-one")
    images = write_frames(tmp_path / "frames", {"a.png": frame_with_tiles([0, 0])})
    config = write_config(tmp_path / "edge.toml",
                          daemon_sections(tmp_path, mqtt_broker, model, images))
    args = type("Args", (), {"config": config, "config_only": False})
    # the black frame is valid; the model check's grey and noise tiles are not
    assert check_run(args) == 1
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "FAIL" in rows["model"] and "outside [0, 1]" in rows["model"]
    assert "SKIP" in rows["inference"]


def test_payloads_are_strict_json_and_the_outbox_refuses_nan_without_taking_a_seq(tmp_path):
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        encode_payload({"score": math.inf})
    outbox = Outbox(tmp_path / "outbox.sqlite", 10**6, stream="L1/cam1")
    try:
        good = {"event_id": "a", "defects": [{"score": 0.5}]}
        bad = {"event_id": "b", "defects": [{"score": math.nan}]}
        assert outbox.append([bad, good], "t") == 1
        assert good["seq"] == 1 and "seq" not in bad
        assert outbox.counters["errors"] == 1
        assert [e.payload for e in outbox.pending()] == [encode_payload(good).encode()]
    finally:
        outbox.close()


def test_a_tick_that_raises_stops_nothing_and_the_fault_fields_are_never_null(caplog):
    class FailingTicks:
        ticks, stopped = 0, False

        def start(self):
            pass

        def tick(self):
            self.ticks += 1
            raise TypeError("a side feature's bug")

        def shutdown(self):
            self.stopped = True

    daemon = FailingTicks()
    caplog.set_level(logging.ERROR, logger="edge.commands.run")
    run_daemon(daemon, threading.Event(), until=lambda: daemon.ticks >= 3, tick=0.01)
    assert daemon.ticks == 3 and daemon.stopped
    failures = [r for r in caplog.records if "tick failed; inspection goes on" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None  # one per 10 s, traceback
    # the first fault's count seen before its fields (a race with the pipeline's thread)
    stats = SimpleNamespace(model_fault_since=None, model_fault_reason=None)
    state = Daemon._model_state(SimpleNamespace(_model_faulted=True, stats=stats))
    assert state["model_state"] == "fault" and state["model_fault"]["reason"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", state["model_fault"]["since"])


def test_model_fault_since_is_the_start_of_the_fault_state_through_intermittent_faults():
    stats = SimpleNamespace(model_faults=0, model_faulted=False, model_fault_since=None,
                            model_fault_reason=None)
    published = []
    daemon = SimpleNamespace(stats=stats, _model_faulted=False, _faults_seen=0, _birth_state=None,
                             outbox=SimpleNamespace(stream="s"),
                             mqtt=SimpleNamespace(republish_birth=lambda: published.append(1)
                                                  or True))
    pipeline = SimpleNamespace(stats=stats)

    def tick() -> str:
        Daemon._update_birth(daemon)
        return Daemon._model_state(daemon)["model_state"]

    assert tick() == "ok"
    Pipeline._model_fault(pipeline, "first")
    first = stats.model_fault_since
    assert first is not None and tick() == "fault"
    stats.model_faulted = False  # a valid frame, then a fault again before the next tick
    Pipeline._model_fault(pipeline, "again")
    assert tick() == "fault" and stats.model_fault_since == first
    assert Daemon._model_state(daemon)["model_fault"]["reason"] == "again"
    stats.model_faulted = False
    assert tick() == "ok" and stats.model_fault_since is None and len(published) == 2
    Pipeline._model_fault(pipeline, "later")
    assert tick() == "fault" and stats.model_fault_since >= first
