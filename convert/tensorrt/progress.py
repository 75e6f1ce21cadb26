"""The engine build's progress: TensorRT 10+ reports its optimiser's phases to an
IProgressMonitor; 8.6 (the GTX 1060's last release) has none and the build stays silent.

Top-level phases get a `train.progress.Progress` line each (steps done, ETA); a nested phase's
steps refresh its top-level phase's line, so a long tactic search is never silent. TensorRT calls
the monitor from its own threads: every call holds one lock, and nothing in it may raise.
"""

from __future__ import annotations

import logging
import threading

from train.progress import Progress

log = logging.getLogger(__name__)


def make_progress_monitor(trt, label: str = "TensorRT build"):
    """An IProgressMonitor for `builder_config.progress_monitor`, or None where the installed
    TensorRT has no such interface."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class BuildProgress(trt.IProgressMonitor):
        def __init__(self) -> None:
            super().__init__()
            self._lock = threading.Lock()
            self._roots: dict[str, str] = {}  # phase -> its top-level phase
            self._bars: dict[str, Progress] = {}

        def phase_start(self, phase_name, parent_phase, num_steps) -> None:
            try:
                with self._lock:
                    root = self._roots.get(parent_phase, parent_phase) if parent_phase else None
                    self._roots[phase_name] = root or phase_name
                    if root is None:
                        self._bars[phase_name] = Progress(num_steps, f"{label}: {phase_name}",
                                                          unit="steps")
            except Exception:  # noqa: BLE001 (an exception must not reach TensorRT's thread)
                log.debug("progress monitor: phase_start failed", exc_info=True)

        def step_complete(self, phase_name, step) -> bool:
            try:
                with self._lock:
                    bar = self._bars.get(phase_name)
                    if bar is not None:
                        bar.update(1)
                    else:
                        root = self._bars.get(self._roots.get(phase_name, ""))
                        if root is not None:
                            root.tick()
            except Exception:  # noqa: BLE001
                log.debug("progress monitor: step_complete failed", exc_info=True)
            return True  # False would cancel the build

        def phase_finish(self, phase_name) -> None:
            try:
                with self._lock:
                    self._roots.pop(phase_name, None)
                    bar = self._bars.pop(phase_name, None)
                    if bar is not None:
                        bar.close()
            except Exception:  # noqa: BLE001
                log.debug("progress monitor: phase_finish failed", exc_info=True)

        def close(self, finished: bool) -> None:
            """Close the lines of phases TensorRT left open (a failed build)."""
            with self._lock:
                for bar in self._bars.values():
                    bar.close(finished=finished)
                self._bars.clear()
                self._roots.clear()

    return BuildProgress()
