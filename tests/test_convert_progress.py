"""Progress with an ETA for the long steps of convert: export (child processes, parity), INT8
calibration and the gate; a redrawn line on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import io
import logging
import re
import sys

import numpy as np
import pytest

import train.progress
from convert.export import onnx_outputs, run_child
from convert.ort_engine import TileReader
from tests.fixtures.convert import THREADS, run_convert, tile_batch
from train.progress import Progress

ETA = re.compile(r"^(?P<label>.+): (?P<done>\d+)/(?P<total>\d+) tiles \(\d+%\), ETA \d+:\d\d$")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "train.progress"]


def eta_lines(caplog, label: str) -> list[re.Match]:
    found = [ETA.match(m) for m in messages(caplog)]
    return [m for m in found if m and m["label"] == label]


@pytest.fixture
def every_update(monkeypatch, caplog):
    """Log lines at every update (the default is every 10 s, longer than these small runs)."""
    monkeypatch.setattr(train.progress, "LOG_INTERVAL_S", 0.0)
    caplog.set_level(logging.INFO, logger="train.progress")
    return caplog


def test_on_a_terminal_one_line_is_redrawn_and_cleared(caplog):
    clock, stream = FakeClock(), Terminal()
    caplog.set_level(logging.INFO, logger="train.progress")
    with Progress(400, "INT8 calibration", clock=clock, stream=stream) as progress:
        for _ in range(4):
            clock.now += 6
            progress.update(100)
    drawn = stream.getvalue()
    assert drawn.startswith("\rINT8 calibration: 100/400 tiles (25%), ETA 0:18\x1b[K")
    assert "\rINT8 calibration: 300/400 tiles (75%), ETA 0:06\x1b[K" in drawn
    assert drawn.endswith("\r\x1b[K")  # the line is cleared; the log keeps the summary
    assert messages(caplog) == ["INT8 calibration: 400 tiles done in 0:24"]


def test_off_a_terminal_plain_lines_and_elapsed_time_without_a_count(caplog):
    clock, stream = FakeClock(), io.StringIO()
    caplog.set_level(logging.INFO, logger="train.progress")
    with Progress(None, "tf2onnx", interval=10, clock=clock, stream=stream) as progress:
        for _ in range(5):
            clock.now += 5
            progress.tick()
    assert stream.getvalue() == ""  # nothing but log lines: no escapes in a log file
    assert messages(caplog) == ["tf2onnx: 0:10 elapsed", "tf2onnx: 0:20 elapsed",
                                "tf2onnx: done in 0:25"]


def test_export_child_process_reports_its_elapsed_time(every_update, tmp_path):
    command = [sys.executable, "-c", "import time; time.sleep(1.2)"]
    run_child(command, tmp_path / "child.log", "export step 2 of 4: tf2onnx", threads=0)
    lines = messages(every_update)
    assert any(re.fullmatch(r"export step 2 of 4: tf2onnx: 0:0\d elapsed", m) for m in lines)
    assert re.fullmatch(r"export step 2 of 4: tf2onnx: done in 0:0\d", lines[-1])


def test_export_parity_check_counts_its_tiles(exported_onnx, every_update):
    tiles = tile_batch(24)
    onnx_outputs(exported_onnx, tiles, THREADS)
    lines = eta_lines(every_update, "parity check: ONNX Runtime")
    assert [int(m["done"]) for m in lines] == [8, 16]
    assert all(int(m["total"]) == 24 for m in lines)
    assert "parity check: ONNX Runtime: 24 tiles done in" in messages(every_update)[-1]


def test_int8_calibration_counts_its_tiles(every_update):
    reader = TileReader("image", np.zeros((20, 8, 8, 1), np.uint8), batch=8)
    batches = 0
    while reader.get_next() is not None:
        batches += 1
    assert batches == 3
    assert [int(m["done"]) for m in eta_lines(every_update, "INT8 calibration")] == [8, 16]
    assert messages(every_update)[-1].startswith("INT8 calibration: 20 tiles done in")


def test_build_engine_shows_calibration_and_gate_progress(exported_run, tmp_path, capsys,
                                                          every_update):
    out = tmp_path / "model-int8.onnx"
    result = run_convert(capsys, "build-engine", "--run", exported_run.path.parent, "--out", out,
                         "--precision", "int8", "--backend", "onnxruntime", "--threads",
                         THREADS, "--calib-images", 4)
    assert result.code in (0, 3), result.err
    done = " ".join(m for m in messages(every_update) if " done in " in m)
    for label in ("INT8 calibration", "gate: onnxruntime int8", "gate: validation crops",
                  "gate: onnx fp32"):
        lines = eta_lines(every_update, label)
        assert lines, f"no progress line for {label}"
        assert all(int(m["done"]) < int(m["total"]) for m in lines)
        assert f"{label}: " in done
