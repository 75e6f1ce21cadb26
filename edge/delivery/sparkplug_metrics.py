"""Which metrics the edge node and its camera device declare (docs/mqtt.md explains each).

The daemon's snapshot is one dict keyed by these names; a name it lacks is sent as null, so
metrics whose source does not exist yet (coil tracking) are declared and null until it does.
"""

from __future__ import annotations

from edge.delivery.sparkplug_payload import DataType, MetricSpec, specs

BD_SEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"


def node_metrics() -> list[MetricSpec]:
    return specs([
        (BD_SEQ, DataType.Int64),
        (REBIRTH, DataType.Boolean),
        ("Properties/Software Version", DataType.String),
        ("Properties/Line", DataType.String),
        ("Model/Name", DataType.String),
        ("Model/Version", DataType.String),
        ("Model/SHA256", DataType.String),
        ("Model/Backend", DataType.String),
    ])


def device_metrics(class_names: list[str], first_alias: int) -> list[MetricSpec]:
    definitions = [
        ("Camera/State", DataType.String),
        ("Broker/State", DataType.String),
        ("Tracking/State", DataType.String),
        ("Frames/In", DataType.UInt64),
        ("Frames/Processed", DataType.UInt64),
        ("Frames/Dropped", DataType.UInt64),
        ("Frames/Failed", DataType.UInt64),
        ("Frames/FPS", DataType.Double),
        ("Inference/P50 ms", DataType.Double),
        ("Inference/P99 ms", DataType.Double),
        ("Events/Total", DataType.UInt64),
        ("Outbox/Depth", DataType.UInt64),
        ("Outbox/Dropped", DataType.UInt64),
        ("Coil/Id", DataType.String),
        ("Coil/Position m", DataType.Double),
        ("Last Defect/Class", DataType.String),
        ("Last Defect/Score", DataType.Double),
        ("Last Defect/MD m", DataType.Double),
        ("Last Defect/CD mm", DataType.Double),
        ("Model/Name", DataType.String),
        ("Model/Version", DataType.String),
    ]
    definitions += [(f"Defects/{name}", DataType.UInt64) for name in class_names]
    definitions += [(f"Coil/Defects/{name}", DataType.UInt64) for name in class_names]
    # added later: after every earlier metric (the per-class ones too), so their aliases stay
    definitions += [
        ("Inspection/Paused", DataType.Boolean),
        ("Frames/Paused", DataType.UInt64),
        ("Outbox/Oldest Age s", DataType.Double),
    ]
    return specs(definitions, first_alias)
