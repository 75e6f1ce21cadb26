"""The daemon: wires config -> model, source, pipeline, outbox, publisher, MQTT and systemd.

`start()` loads and warms the model, opens the outbox and the camera, connects (asynchronously) to
the broker, starts the threads and sends READY=1. `tick()` is called by the main thread about once
a second: stats messages and STATUS= lines. `shutdown()` stops grabbing, drains the frame queue,
flushes the outbox for `mqtt.flush_timeout` seconds, publishes `stopped` and disconnects.
"""

from __future__ import annotations

import logging
import platform
import time

from edge import __version__
from edge.config import EdgeConfig
from edge.events import DefectRule, EventBuilder, model_info
from edge.model import LoadedModel, load_model
from edge.mqtt import MqttClient
from edge.observe.current_coil import CurrentCoil  # plant integration (issue 17)
from edge.observe.last_defect import LastDefect  # plant integration
from edge.observe.plant import PlantIntegration  # plant integration
from edge.outbox import Outbox
from edge.pipeline import FrameProcessor, Pipeline
from edge.publisher import Publisher
from edge.sdnotify import SdNotifier, Watchdog
from edge.sources import make_source
from edge.sources.base import FrameSource
from edge.stats import Stats, stats_payload

log = logging.getLogger(__name__)

_STATUS_INTERVAL_S = 5.0
_DRAIN_TIMEOUT_S = 5.0


class Daemon:
    def __init__(
        self,
        config: EdgeConfig,
        *,
        model: LoadedModel | None = None,
        source: FrameSource | None = None,
        notifier: SdNotifier | None = None,
        lossless: bool = False,
    ) -> None:
        self.config = config
        self.model = model
        self.source = source
        self.notifier = notifier or SdNotifier()
        self.lossless = lossless
        self.stats = Stats()
        self.outbox: Outbox | None = None
        self.mqtt: MqttClient | None = None
        self.publisher: Publisher | None = None
        self.pipeline: Pipeline | None = None
        self._next_stats = 0.0
        self._next_status = 0.0
        self._started = False
        # plant integration: shared objects the lead's coil tracking fills (None until then)
        self.current_coil = CurrentCoil()
        self.last_defect = LastDefect()
        self.plant = PlantIntegration(self)

    def start(self) -> None:
        config = self.config
        self.notifier.status("loading the model")
        if self.model is None:
            self.model = load_model(
                config.model.path, config.model.backend,
                max_batch=config.model.max_batch, threads=config.model.threads,
            )
        card = self.model.card
        rule = DefectRule(card, config.events)
        processor = FrameProcessor(self.model, rule, config.tiling)
        info = model_info(card, self.model.sha256)
        log.info("model %s %s (%s), classes %s, thresholds %s", card.name, card.version,
                 self.model.runtime.backend, card.class_names, rule.thresholds.tolist())
        site = config.site
        self.outbox = Outbox(
            config.outbox.path, int(config.outbox.max_mb * 1e6), stream=f"{site.line}/{site.camera}"
        )
        self.mqtt = MqttClient(config.mqtt, site, birth=self._birth(info))
        self.publisher = Publisher(
            self.outbox, self.mqtt, self.mqtt.topics.defects,
            max_inflight=config.mqtt.max_inflight, queue_size=config.pipeline.event_queue,
        )
        if self.source is None:
            self.source = make_source(config.camera)
        self.source.open()
        self.pipeline = Pipeline(
            self.source, processor, EventBuilder(site, info),
            self.last_defect.tap(self.publisher.submit), self.stats,
            watchdog=Watchdog(self.notifier), frame_queue=config.pipeline.frame_queue,
            lossless=self.lossless,
        )
        self.mqtt.start()
        self.publisher.start()
        self.pipeline.start()
        self.plant.start()
        self._next_stats = time.monotonic() + config.mqtt.stats_interval
        self._started = True
        self.notifier.ready(self.status_line())
        log.info("running: line %s camera %s -> %s", site.line, site.camera,
                 self.mqtt.topics.defects)

    def tick(self) -> None:
        now = time.monotonic()
        if now >= self._next_stats:
            self._next_stats = now + self.config.mqtt.stats_interval
            self.mqtt.publish_stats(self.stats_message())
        if now >= self._next_status:
            self._next_status = now + _STATUS_INTERVAL_S
            self.notifier.status(self.status_line())
        self.plant.tick()

    def stats_message(self) -> dict:
        return stats_payload(
            self.stats,
            line=self.config.site.line,
            camera=self.config.site.camera,
            frames_dropped=self.pipeline.frames.dropped,
            frame_queue_depth=len(self.pipeline.frames),
            events_rejected=self.publisher.rejected,
            events_refused=self.publisher.refused,
            outbox=self.outbox.counters,
            camera_state=str(self.source.state),
            camera_counters=self.source.counters,
            mqtt_state=self.mqtt.state,
        )

    def status_line(self) -> str:
        stats = self.stats
        return (
            f"frames {stats.frames_processed}/{stats.frames_in} "
            f"(dropped {self.pipeline.frames.dropped if self.pipeline else 0}), "
            f"events {stats.events}, outbox {self.outbox.depth if self.outbox else 0}, "
            f"camera {self.source.state if self.source else '-'}, "
            f"broker {self.mqtt.state if self.mqtt else '-'}"
        )

    @property
    def all_acknowledged(self) -> bool:
        return self.publisher is not None and self.publisher.idle

    def shutdown(self, flush_timeout: float | None = None) -> None:
        """Stop in order; safe to call after a partial start."""
        flush_timeout = self.config.mqtt.flush_timeout if flush_timeout is None else flush_timeout
        self.notifier.stopping(f"stopping: flushing up to {flush_timeout:g} s")
        if self._started:
            log.info("stopping: %s", self.status_line())
        if self.pipeline is not None:
            self.pipeline.stop(_DRAIN_TIMEOUT_S)
        if self.publisher is not None:
            self.publisher.stop(flush_timeout)
        self.plant.stop()
        if self.mqtt is not None:
            self.mqtt.stop()
        if self.outbox is not None:
            self.outbox.close()
        if self.source is not None:
            self.source.close()
        if self.model is not None:
            self.model.close()
        if self._started:
            log.info("stopped: %s", self.status_line())
        self._started = False

    def _birth(self, info: dict) -> dict:
        return {
            "model": info,
            "backend": self.model.runtime.backend,
            "software": {"steel-inspect": __version__, "python": platform.python_version()},
        }
