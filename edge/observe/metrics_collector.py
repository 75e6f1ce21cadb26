"""Prometheus metrics read from the daemon's own counters at scrape time (so they always equal
its stats message), labelled by line and camera. Names follow Prometheus conventions: `_total`
counters, base units (`_seconds`, `_bytes`), `_info` gauges with value 1."""

from __future__ import annotations

import threading

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

PREFIX = "steel_inspect"
# seconds; a GTX 1060 batch is tens of ms, a CPU fallback hundreds
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class LatencyHistogram:
    """Cumulative buckets fed from the stats' rolling per-frame timings (exact as long as fewer
    than the window's 2048 frames pass between two scrapes)."""

    def __init__(self, buckets=LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self._seen = 0
        self._lock = threading.Lock()

    def update(self, window_ms, processed: int) -> None:
        with self._lock:
            values = list(window_ms)
            new = min(max(processed - self._seen, 0), len(values))
            self._seen = processed
            for value_ms in values[len(values) - new:]:
                seconds = value_ms / 1e3
                self.total += seconds
                index = next((i for i, b in enumerate(self.buckets) if seconds <= b),
                             len(self.buckets))
                self.counts[index] += 1

    def family(self, name: str, documentation: str, labels: dict) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, documentation, labels=list(labels))
        cumulative, points = 0, []
        for bound, count in zip((*map(str, self.buckets), "+Inf"), self.counts, strict=True):
            cumulative += count
            points.append((bound, cumulative))
        family.add_metric(list(labels.values()), points, self.total)
        return family


class DaemonCollector:
    def __init__(self, daemon) -> None:
        self._daemon = daemon
        site = daemon.config.site
        self._labels = {"line": site.line, "camera": site.camera}
        self._inference = LatencyHistogram()
        self._end_to_end = LatencyHistogram()

    def collect(self):
        daemon, labels = self._daemon, self._labels
        stats = daemon.stats
        yield from self._counters(daemon, labels)
        yield from self._gauges(daemon, labels)
        self._inference.update(stats.inference_ms, stats.frames_processed)
        end_to_end = [i + o for i, o in zip(list(stats.inference_ms), list(stats.overhead_ms),
                                            strict=False)]
        self._end_to_end.update(end_to_end, stats.frames_processed)
        yield self._inference.family(f"{PREFIX}_inference_seconds",
                                     "model run time per frame", labels)
        yield self._end_to_end.family(f"{PREFIX}_frame_processing_seconds",
                                      "tiling + inference + defect rule per frame", labels)

    def _counters(self, daemon, labels):
        stats, names, values = daemon.stats, list(labels), list(labels.values())
        for name, doc, value in (
            ("frames_received", "frames taken from the camera", stats.frames_in),
            ("frames_processed", "frames inspected", stats.frames_processed),
            ("frames_dropped", "frames dropped because inference fell behind",
             daemon.pipeline.frames.dropped),
            ("frames_failed", "frames that failed in inference", stats.frames_failed),
            ("frames_paused", "frames acquired while inspection was paused (not inspected)",
             stats.frames_paused),
            ("events", "defect events built (one per frame with defects)", stats.events),
            ("events_rejected", "events lost because the event queue was full",
             daemon.publisher.rejected),
            ("events_refused", "event publications the broker refused (MQTT 5)",
             daemon.publisher.refused),
            ("outbox_dropped", "unsent events dropped because the outbox was full",
             daemon.outbox.counters["dropped"]),
        ):
            family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=names)
            family.add_metric(values, value)
            yield family
        family = CounterMetricFamily(f"{PREFIX}_defects", "defective tiles by class",
                                     labels=[*names, "class"])
        for name in daemon.model.card.class_names:
            family.add_metric([*values, name], stats.defects_by_class.get(name, 0))
        yield family

    def _gauges(self, daemon, labels):
        names, values = list(labels), list(labels.values())
        depth = GaugeMetricFamily(f"{PREFIX}_outbox_depth", "events waiting in the outbox",
                                  labels=names)
        depth.add_metric(values, daemon.outbox.depth)
        yield depth
        age = GaugeMetricFamily(f"{PREFIX}_outbox_oldest_age_seconds",
                                "how long the oldest unsent event has waited (0: none)",
                                labels=names)
        age.add_metric(values, round(daemon.outbox.oldest_age_s, 3))
        yield age
        paused = GaugeMetricFamily(f"{PREFIX}_inspection_paused",
                                   "1 while the pause command holds inspection (frames are "
                                   "acquired, not inspected)", labels=names)
        paused.add_metric(values, 1 if daemon.pause.active else 0)
        yield paused
        yield from self._sparkplug(daemon, names, values)
        for kind, state in (("camera", str(daemon.source.state)),
                            ("broker", daemon.mqtt.state),
                            ("tracking", getattr(daemon, "tracking_state", None))):
            if state is None:
                continue  # no tracking yet: the series is absent rather than made up
            family = GaugeMetricFamily(f"{PREFIX}_{kind}_state", f"1 for the {kind}'s state",
                                       labels=[*names, "state"])
            family.add_metric([*values, state.split(":")[0]], 1)
            yield family
        card = daemon.model.card
        info = GaugeMetricFamily(f"{PREFIX}_model_info", "the loaded model (value 1)",
                                 labels=[*names, "name", "version", "sha256", "backend"])
        info.add_metric([*values, card.name, card.version, daemon.model.sha256,
                         daemon.model.runtime.backend], 1)
        yield info
        coil = daemon.current_coil
        if coil.coil_id is not None:
            family = GaugeMetricFamily(f"{PREFIX}_coil_info", "the coil under the camera",
                                       labels=[*names, "coil_id"])
            family.add_metric([*values, coil.coil_id], 1)
            yield family
        if coil.position_m is not None:
            family = GaugeMetricFamily(f"{PREFIX}_coil_position_meters",
                                       "position on the current coil", labels=names)
            family.add_metric(values, coil.position_m)
            yield family

    @staticmethod
    def _sparkplug(daemon, names, values):
        node = getattr(daemon.plant, "sparkplug", None)
        if node is None:
            return
        held = GaugeMetricFamily(f"{PREFIX}_sparkplug_held",
                                 "DDATA held while the primary host is offline", labels=names)
        held.add_metric(values, len(node.held))
        yield held
        dropped = CounterMetricFamily(f"{PREFIX}_sparkplug_held_dropped",
                                      "held DDATA dropped, oldest first, past sparkplug.hold_max",
                                      labels=names)
        dropped.add_metric(values, node.held.dropped)
        yield dropped
