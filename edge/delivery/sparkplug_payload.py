"""Sparkplug B payloads: metric definitions, births with aliases, data by exception, decoding.

Values come from a snapshot {metric name: value}; None is sent as a null metric (is_null), a
`Timed(value, ms)` carries its own acquisition time (the frame of the last defect, say).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from edge.delivery import sparkplug_b_pb2 as pb

DataType = pb.DataType
_UNSIGNED = {DataType.UInt8, DataType.UInt16, DataType.UInt32}
_LONG = {DataType.UInt64, DataType.Int64, DataType.DateTime}
_STRING = {DataType.String, DataType.Text, DataType.UUID}


class Timed(NamedTuple):
    value: Any
    timestamp_ms: int


@dataclass(frozen=True)
class MetricSpec:
    name: str
    datatype: int  # a DataType value
    alias: int


def now_ms() -> int:
    return int(time.time() * 1000)


def specs(definitions: list[tuple[str, int]], first_alias: int = 1) -> list[MetricSpec]:
    return [MetricSpec(name, datatype, first_alias + i)
            for i, (name, datatype) in enumerate(definitions)]


def set_value(metric, datatype: int, value: Any) -> None:
    """Fill a Payload.Metric's value field for `datatype`; None (or NaN) becomes is_null."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        metric.is_null = True
    elif datatype == DataType.Boolean:
        metric.boolean_value = bool(value)
    elif datatype in _UNSIGNED:
        metric.int_value = int(value)
    elif datatype in _LONG:
        metric.long_value = int(value) & 0xFFFFFFFFFFFFFFFF  # Int64 as two's complement
    elif datatype == DataType.Float:
        metric.float_value = float(value)
    elif datatype == DataType.Double:
        metric.double_value = float(value)
    elif datatype in _STRING:
        metric.string_value = str(value)
    else:
        raise ValueError(f"datatype {datatype} is not sent by this edge node")


def add_metric(payload, spec: MetricSpec, value: Any, timestamp_ms: int, *, birth: bool,
               historical: bool = False) -> None:
    """A birth names each metric with its alias and datatype; data uses the alias only."""
    if isinstance(value, Timed):
        value, timestamp_ms = value
    metric = payload.metrics.add()
    if birth:
        metric.name = spec.name
    metric.alias = spec.alias
    metric.timestamp = timestamp_ms
    metric.datatype = spec.datatype
    if historical:
        metric.is_historical = True
    set_value(metric, spec.datatype, value)


def payload(seq: int | None, timestamp_ms: int | None = None):
    message = pb.Payload()
    message.timestamp = now_ms() if timestamp_ms is None else timestamp_ms
    if seq is not None:
        message.seq = seq
    return message


def metric_value(metric) -> Any:
    """The Python value of a decoded metric (None when null)."""
    if metric.is_null:
        return None
    field = metric.WhichOneof("value")
    if field is None:
        return None
    value = getattr(metric, field)
    if field == "long_value" and metric.datatype == DataType.Int64 and value >= 1 << 63:
        value -= 1 << 64
    return value


def decode(data: bytes):
    message = pb.Payload()
    message.ParseFromString(data)
    return message
