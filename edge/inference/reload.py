"""Hot swap: load the configured model again in the background and swap it in between frames.

`systemctl reload` (ExecReload sends SIGHUP) or SIGHUP asks the daemon to reload. A background
thread loads `model.path` (a newly gated engine moved over the file, or, with the model store, the
version `current` names now: `edge model install` / `rollback`), which checks
its manifest and gate and warms it up, then hands the pipeline the new processor and model
info (for the events); the inference thread takes them between two frames, so no frame is lost
or processed twice, and every event names the model that made it. If the new model fails to load
or warm up, the old one keeps running and the reason is logged (`ModelReloader.last_error`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from edge.config import EdgeConfig
from edge.defects.events import DefectRule, model_info
from edge.errors import SteelInspectError
from edge.inference.batchsize import configured_max_batch
from edge.inference.cpuflags import inference_threads
from edge.inference.model import LoadedModel, load_model
from edge.inference.pipeline import FrameProcessor, Pipeline
from edge.inference.store import resolve_configured

log = logging.getLogger(__name__)

_SWAP_TIMEOUT_S = 30.0


def load_configured_model(config: EdgeConfig) -> LoadedModel:
    m = config.model
    engine, backend = resolve_configured(m.path, m.backend)
    return load_model(engine, backend, max_batch=configured_max_batch(config, engine),
                      threads=inference_threads(m.threads), allow_ungated=m.allow_ungated)


class ModelReloader:
    """One reload at a time; `on_swapped(new_model)` runs after the swap (the old model is closed
    by the reloader once the inference thread no longer uses it)."""

    def __init__(self, config: EdgeConfig, pipeline: Pipeline,
                 on_swapped: Callable[[LoadedModel], LoadedModel]) -> None:
        self.config = config
        self.pipeline = pipeline
        self.on_swapped = on_swapped
        self.last_error: str | None = None
        self.swaps = 0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def request(self) -> bool:
        """Start a reload in the background; False if one is still running."""
        with self._lock:
            if self.busy:
                log.warning("reload requested while one is running; ignored")
                return False
            self._thread = threading.Thread(target=self._reload, name="model-reload", daemon=True)
            self._thread.start()
            return True

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _reload(self) -> None:
        log.info("reloading the model from %s", self.config.model.path)
        try:
            model = load_configured_model(self.config)
            card = model.card
            processor = FrameProcessor(model, DefectRule(card, self.config.events),
                                       self.config.tiling)
        except SteelInspectError as exc:
            self._failed(str(exc))
            return
        except Exception as exc:  # a reload must never stop inspection
            self._failed(f"{type(exc).__name__}: {exc}")
            return
        if not self.pipeline.swap(processor, model_info(card, model.sha256)).wait(_SWAP_TIMEOUT_S):
            log.error("the inference thread did not take the new model within %.0f s",
                      _SWAP_TIMEOUT_S)
        old = self.on_swapped(model)
        if old is not None and old is not model:
            old.close()
        self.swaps += 1
        self.last_error = None
        log.info("model swapped: now %s %s (sha256 %s)", card.name, card.version,
                 model.sha256[:12])

    def _failed(self, reason: str) -> None:
        self.last_error = reason
        log.error("model reload failed, keeping the running model: %s", reason)
