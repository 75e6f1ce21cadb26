"""The engine build's progress monitor over a stand-in `IProgressMonitor` base class (TensorRT
10+ calls it from its own threads; tests/test_tensorrt_api.py checks the names on the real
bindings)."""

from __future__ import annotations

import logging
import threading
import types

from convert.tensorrt.progress import make_progress_monitor


class StandInMonitor:
    def __init__(self) -> None:
        self.initialised = True


def fake_trt():
    return types.SimpleNamespace(IProgressMonitor=StandInMonitor)


def test_tensorrt_without_a_progress_interface_gets_none():
    assert make_progress_monitor(types.SimpleNamespace()) is None


def test_top_level_phases_log_their_steps_and_nested_steps_from_many_threads(caplog):
    monitor = make_progress_monitor(fake_trt())
    assert isinstance(monitor, StandInMonitor) and monitor.initialised
    caplog.set_level(logging.INFO, logger="train.progress")
    monitor.phase_start("Building engine", None, 4)
    monitor.phase_start("Tactic selection", "Building engine", 200)
    monitor.phase_start("Layer 7", "Tactic selection", 50)

    def nested_steps():
        for step in range(50):
            assert monitor.step_complete("Layer 7", step) is True  # never cancels

    threads = [threading.Thread(target=nested_steps) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    monitor.phase_finish("Layer 7")
    monitor.phase_finish("Tactic selection")
    for step in range(4):
        monitor.step_complete("Building engine", step)
    monitor.phase_finish("Building engine")

    finished = [r.getMessage() for r in caplog.records if "done in" in r.getMessage()]
    assert finished == ["TensorRT build: Building engine: 4 steps done in 0:00"]  # nested: no line
    monitor.step_complete("Gone", 0)  # a phase it never saw: ignored, no exception


def test_a_failed_build_closes_the_open_phases_as_stopped(caplog):
    monitor = make_progress_monitor(fake_trt())
    caplog.set_level(logging.INFO, logger="train.progress")
    monitor.phase_start("Building engine", None, 10)
    monitor.step_complete("Building engine", 0)
    monitor.phase_start(None, "Building engine", 3)  # odd arguments must not raise into TensorRT
    monitor.close(finished=False)
    assert [r.getMessage() for r in caplog.records] == [
        "TensorRT build: Building engine: stopped after 0:00 (1/10 steps)"]
