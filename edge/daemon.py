"""The daemon: wires config -> model, source, tracking, pipeline, outbox, publisher, MQTT, systemd.

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
from edge.archive.coils import CoilArchive
from edge.archive.writer import ArchiveWriter
from edge.config import EdgeConfig
from edge.control.pause import InspectionPause
from edge.defects.events import DefectRule, EventBuilder, model_info
from edge.defects.inspection import CoilInspection, TileInspection, resume_segment
from edge.defects.position import StripLocator
from edge.delivery.mqtt import MqttClient
from edge.delivery.outbox import Outbox
from edge.delivery.publisher import Publisher
from edge.inference.model import LoadedModel
from edge.inference.pipeline import FrameProcessor, Pipeline
from edge.inference.reload import ModelReloader, load_configured_model
from edge.observe.current_coil import CurrentCoil  # plant integration (issue 17)
from edge.observe.last_defect import LastDefect  # plant integration
from edge.observe.latest_frame import LatestFrame, LatestFrameWriter
from edge.observe.plant import PlantIntegration  # plant integration
from edge.observe.sdnotify import SdNotifier, Watchdog
from edge.observe.stats import Stats, stats_payload, utc_iso
from edge.sources import make_source
from edge.sources.base import FrameSource
from edge.tracking import Tracker
from edge.tracking.sources import make_tracking

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
        self.tracker: Tracker | None = None
        self.tracking = None
        self.archive: ArchiveWriter | None = None
        self.latest: LatestFrameWriter | None = None
        self.locator: StripLocator | None = None
        self.rule: DefectRule | None = None
        self._next_stats = 0.0
        self._next_status = 0.0
        self._started = False
        self._model_faulted = False  # what the retained status says
        self._faults_seen = 0
        self._birth_state: tuple | None = None
        self.reloader: ModelReloader | None = None
        # plant integration: shared objects the lead's coil tracking fills (None until then)
        self.current_coil = CurrentCoil()
        self.last_defect = LastDefect()
        self.plant = PlantIntegration(self)
        self.pause = InspectionPause(config.outbox.path.parent)  # the `pause` command; not kept

    def start(self) -> None:
        config = self.config
        self.notifier.status("loading the model")
        if self.model is None:
            self.model = load_configured_model(config)
        card = self.model.card
        rule = DefectRule(card, config.events)
        self.rule = rule
        processor = FrameProcessor(self.model, rule, config.tiling)
        info = model_info(card, self.model.sha256)
        log.info("model %s %s (%s), classes %s, thresholds applied %s", card.name, card.version,
                 self.model.runtime.backend, card.class_names, rule.cuts.tolist())
        site = config.site
        self.outbox = Outbox(
            config.outbox.path, int(config.outbox.max_mb * 1e6), stream=f"{site.line}/{site.camera}"
        )
        self._birth_state = (False, self.outbox.stream)  # what the first birth will say
        self.mqtt = MqttClient(config.mqtt, site, birth=self._birth)
        self.publisher = Publisher(
            self.outbox, self.mqtt,
            {"defects": self.mqtt.topics.defects, "coils": self.mqtt.topics.coils},
            max_inflight=config.mqtt.max_inflight, queue_size=config.pipeline.event_queue,
        )
        self.tracker = Tracker(config.tracking.source)
        self.tracking = make_tracking(config.tracking, self.tracker, self.mqtt)
        inspection, locator = self._inspection(rule, info)
        if self.source is None:
            self.source = make_source(config.camera)
        self.source.open()
        self.pause.report_previous_run()
        self.pipeline = Pipeline(
            self.source, processor, inspection, self.last_defect.tap(self.publisher.submit),
            self.stats,
            watchdog=Watchdog(self.notifier), frame_queue=config.pipeline.frame_queue,
            lossless=self.lossless, locator=locator, save_state=self.publisher.save_state,
            observer=self._latest_frame_observer(), pause=self.pause,
        )
        self.tracking.start()
        self.mqtt.start()
        self.publisher.start()
        self.pipeline.start()
        self.plant.start()
        self._next_stats = time.monotonic() + config.mqtt.stats_interval
        self._started = True
        self.reloader = ModelReloader(config, self.pipeline, self._model_swapped)
        self.notifier.ready(self.status_line())
        log.info("running: line %s camera %s -> %s", site.line, site.camera,
                 self.mqtt.topics.defects)

    def _inspection(self, rule: DefectRule, info: dict):
        """Events v2: coils and defect objects (resuming a coil a crash interrupted); v1: tiles."""
        config = self.config
        if config.mqtt.event_schema == "v1":
            return TileInspection(rule, EventBuilder(config.site, info)), None
        saved = self.outbox.saved_coil
        self.locator = StripLocator(config.geometry, self.tracker, resume_segment(saved))
        if saved and saved.get("segment") and config.tracking.source != "none":
            self.tracker.last_coil_id = saved["segment"]["coil_id"]
        inspection = CoilInspection(config, rule, info, self.locator, self._coil_archive(rule),
                                    paused_frames=self.pause.frames_by_coil,
                                    paused_coils=self.pause.coils, pause=self.pause)
        if saved:
            log.info("resuming coil %s after a restart", saved["totals"]["coil_id"])
            for kind, payload in inspection.restore(saved):
                self.publisher.submit(kind, payload)
            if config.tracking.source == "none":
                self.locator.segment = None  # positions count from this start
        return inspection, self.locator

    def reload(self) -> bool:
        """Load the configured model in the background and swap it in (SIGHUP)."""
        if self.reloader is None:
            log.warning("reload requested before the daemon started; ignored")
            return False
        return self.reloader.request()

    def _model_swapped(self, model: LoadedModel) -> LoadedModel:
        old, self.model = self.model, model
        self.rule = self.pipeline.processor.rule
        self.mqtt.republish_birth()
        return old

    def _latest_frame_observer(self):
        """Offers a frame to the latest-frame writer (it keeps one per interval, never waits)."""
        interval = self.config.archive.latest_frame_s
        if not self.config.archive.enabled or interval <= 0:
            return None
        self.latest = LatestFrameWriter(self.config.archive_root, self.config.site.camera,
                                        interval)
        self.latest.start()
        tile = self.model.runtime.input_spec.height

        def offer(frame, probabilities, boxes, defects) -> None:
            if not self.latest.due():  # one frame per interval is kept: build only that one
                return
            rule = self.rule
            self.latest.offer(LatestFrame(
                frame.image, frame.frame_id, utc_iso(frame.timestamp), tile,
                [tuple(b) for b in boxes.tolist()], probabilities, rule.class_names,
                rule.applied_thresholds,
                [{"class_id": d["class_id"], "class_name": d["class_name"], "score": d["score"],
                  "box_px": d.get("box_px", d.get("box"))} for d in defects],  # v2 or v1
            ))
        return offer

    def _coil_archive(self, rule: DefectRule) -> CoilArchive | None:
        settings = self.config.archive
        if not settings.enabled:
            return None
        settings = settings.model_copy(update={"path": self.config.archive_root})
        self.archive = ArchiveWriter(settings)
        self.archive.start()
        log.info("defect images and coil maps go to %s", settings.path)
        return CoilArchive(self.archive, self.config.geometry, rule.class_names)

    @property
    def tracking_state(self) -> str | None:
        return self.tracker.state if self.tracker is not None else None

    def use_rule(self, rule: DefectRule) -> None:
        """New thresholds (the `set-thresholds` command): from the next frame, and in the birth."""
        self.pipeline.processor.rule = rule
        self.pipeline.inspection.use_model(rule, model_info(self.model.card, self.model.sha256))
        self.rule = rule
        self.mqtt.republish_birth()

    def set_coil_by_hand(self, coil_id: str | None) -> None:
        """The `coil` command, where no L2 tracking exists: a coil change like L2's."""
        if coil_id is not None:
            self.tracker.report(coil_id)
        self.current_coil.source = "command" if coil_id else None

    def set_paused(self, paused: bool, by: str | None, reason: str | None) -> dict:
        """The `pause` / `resume` commands; the status message says it at once."""
        was = self.pause.active
        status = self.pause.pause(by, reason) if paused else self.pause.resume(by)
        if was != self.pause.active:
            self.mqtt.republish_birth()
            self.notifier.status(self.status_line())
        return status

    def _update_current_coil(self) -> None:
        segment = self.locator.segment if self.locator is not None else None
        inspection = self.pipeline.inspection if self.pipeline is not None else None
        totals = getattr(getattr(inspection, "ledger", None), "open", None)
        coil = self.current_coil
        coil.coil_id = segment.coil_id if segment else None
        coil.position_m = round(segment.md_next_m, 3) if segment else None
        coil.defects_by_class = (
            {name: len(totals.defect_ids.get(name, [])) for name in self.rule.class_names}
            if totals is not None else None)
        if coil.source is None and segment is not None:
            coil.source = "tracking" if self.config.tracking.source != "none" else None

    def tick(self) -> None:
        now = time.monotonic()
        self._update_birth()
        if now >= self._next_stats:
            self._next_stats = now + self.config.mqtt.stats_interval
            self.mqtt.publish_stats(self.stats_message())
        if now >= self._next_status:
            self._next_status = now + _STATUS_INTERVAL_S
            self.notifier.status(self.status_line())
        self._update_current_coil()
        self.plant.tick()

    def _update_birth(self) -> None:
        """Republish the retained status when the model faults or recovers, or the outbox began
        a new stream. A fault since the last tick counts even if the last frame was valid, so
        every fault is seen in the status for at least one tick."""
        faults, was_faulted = self.stats.model_faults, self._model_faulted
        self._model_faulted = self.stats.model_faulted or faults != self._faults_seen
        self._faults_seen = faults
        if was_faulted and not self._model_faulted:
            self.stats.model_fault_since = None  # the fault state ended: the next one begins anew
        state = (self._model_faulted, self.outbox.stream)
        if self._birth_state is None:
            self._birth_state = state  # the first connect's birth says it
        elif state != self._birth_state and self.mqtt.republish_birth():
            self._birth_state = state  # offline: tried again each tick until published

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
        ) | self._coil_stats()

    def _coil_stats(self) -> dict:
        segment = self.locator.segment if self.locator is not None else None
        return {
            "tracking_state": self.tracker.state,
            "tracking_counters": self.tracker.counters,
            "coil_id": segment.coil_id if segment else None,
            "coil_md_m": round(segment.md_next_m, 3) if segment else None,
            "archive": self.archive.stats() if self.archive is not None else None,
            "inspection": self.pause.status()["state"],
            "frames_paused": self.stats.frames_paused,
            "outbox_oldest_age_s": round(self.outbox.oldest_age_s, 3),
        }

    def status_line(self) -> str:
        stats = self.stats
        fault = f"MODEL FAULTS {stats.model_faults}, " if stats.model_faults else ""
        if self.pause.active:
            fault = f"INSPECTION {self.pause.describe()}, " + fault
        if self.outbox is not None and self.outbox.replaced:
            fault += f"OUTBOX RE-CREATED {self.outbox.replaced}, "
        return (
            fault + f"frames {stats.frames_processed}/{stats.frames_in} "
            f"(dropped {self.pipeline.frames.dropped if self.pipeline else 0}), "
            f"events {stats.events}, outbox {self.outbox.depth if self.outbox else 0}, "
            f"camera {self.source.state if self.source else '-'}, "
            f"broker {self.mqtt.state if self.mqtt else '-'}, "
            f"tracking {self.tracker.state if self.tracker else '-'}"
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
        if self.reloader is not None:
            self.reloader.join(_DRAIN_TIMEOUT_S)
        if self.pipeline is not None:
            self.pipeline.stop(_DRAIN_TIMEOUT_S)
        if self.tracking is not None:
            self.tracking.stop()
        if self.archive is not None:
            self.archive.stop()
        if self.latest is not None:
            self.latest.stop()
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

    def _birth(self) -> dict:
        """What a consumer needs to read the events without the model card (sent per connect,
        built then: after a model swap it names the new model)."""
        config, rule, model = self.config, self.rule, self.model
        geometry = config.geometry
        return {
            "model": model_info(model.card, model.sha256),
            "backend": self.model.runtime.backend,
            "gate": self.model.admission.as_status(),
            "software": {"steel-inspect": __version__, "python": platform.python_version()},
            "event_schema": f"steel-inspect/defect-event/{config.mqtt.event_schema}",
            "classes": [
                {"id": cid, "name": name, "threshold": threshold}
                for cid, name, threshold in zip(
                    rule.class_ids, rule.class_names, rule.applied_thresholds, strict=True)
            ],
            "tile_px": self.model.runtime.input_spec.height,
            "stride_px": config.tiling.stride_for(self.model.runtime.input_spec.height),
            "geometry": geometry.model_dump(),
            "tracking": config.tracking.source,
            "stream": self.outbox.stream,
            "last_seq": self.outbox.last_seq,
            "inspection": self.pause.status(),
            **self._model_state(),
        }

    def _model_state(self) -> dict:
        stats = self.stats
        if not self._model_faulted:
            return {"model_state": "ok", "model_fault": None}
        since = stats.model_fault_since  # None only in a race with the pipeline's first fault
        return {"model_state": "fault", "model_fault": {
            "reason": stats.model_fault_reason or "model outputs invalid",
            "since": utc_iso(since if since is not None else time.time())}}
