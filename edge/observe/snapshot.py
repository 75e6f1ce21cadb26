"""One read of the daemon's state, keyed by the Sparkplug metric names (docs/mqtt.md).

Read from other threads than the ones writing; every value is a plain snapshot.
"""

from __future__ import annotations

from edge import __version__
from edge.delivery.sparkplug_payload import Timed
from edge.observe.stats import percentiles


def node_values(daemon) -> dict:
    card, model = daemon.model.card, daemon.model
    return {
        "Properties/Software Version": __version__,
        "Properties/Line": daemon.config.site.line,
        "Model/Name": card.name,
        "Model/Version": card.version,
        "Model/SHA256": model.sha256,
        "Model/Backend": model.runtime.backend,
    }


def device_values(daemon) -> dict:
    stats, pipeline, coil = daemon.stats, daemon.pipeline, daemon.current_coil
    timings = percentiles(stats.inference_ms)
    values = {
        "Camera/State": str(daemon.source.state),
        "Broker/State": daemon.mqtt.state,
        "Tracking/State": getattr(daemon, "tracking_state", None),
        "Frames/In": stats.frames_in,
        "Frames/Processed": stats.frames_processed,
        "Frames/Dropped": pipeline.frames.dropped,
        "Frames/Failed": stats.frames_failed,
        "Frames/Paused": stats.frames_paused,
        "Inspection/Paused": daemon.pause.active,
        "Frames/FPS": round(stats.processing_fps(), 3),
        "Inference/P50 ms": timings["p50"],
        "Inference/P99 ms": timings["p99"],
        "Events/Total": stats.events,
        "Outbox/Depth": daemon.outbox.depth,
        "Outbox/Dropped": daemon.outbox.counters["dropped"],
        "Outbox/Oldest Age s": round(daemon.outbox.oldest_age_s, 1),
        "Coil/Id": coil.coil_id,
        "Coil/Position m": coil.position_m,
        "Model/Name": daemon.model.card.name,
        "Model/Version": daemon.model.card.version,
    }
    for name in daemon.model.card.class_names:
        values[f"Defects/{name}"] = stats.defects_by_class.get(name, 0)
        on_coil = coil.defects_by_class
        values[f"Coil/Defects/{name}"] = None if on_coil is None else on_coil.get(name, 0)
    last, at = daemon.last_defect.values, daemon.last_defect.timestamp_ms
    for key, name in (("class", "Class"), ("score", "Score"), ("md_m", "MD m"),
                      ("cd_mm", "CD mm")):
        value = last.get(key)
        values[f"Last Defect/{name}"] = Timed(value, at) if at is not None else value
    return values
