"""Apply the configured camera settings through a GenICam node map (SFNC feature names).

Only configured settings are written. A node the camera lacks, or cannot write now, is skipped
with a warning naming it; a value outside the node's range is a `CameraSettingError`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from genicam import genapi

from edge.errors import ConfigError

log = logging.getLogger(__name__)


class CameraSettingError(ConfigError):
    """A configured value the camera rejects (out of range, not one of its enumeration entries)."""


@dataclass(frozen=True)
class NodeSetting:
    node: str
    value: object
    key: str | None  # the config key it comes from; None for a helper node set on its behalf

    @property
    def required(self) -> bool:
        return self.key is not None


def settings_from_config(config) -> list[NodeSetting]:
    """The node writes for `config`, in an order cameras accept (format, size, offsets, timing)."""
    settings: list[NodeSetting] = []

    def add(node: str, key: str, helpers: tuple[tuple[str, object], ...] = (), value=None) -> None:
        value = getattr(config, key) if value is None else value
        if value is None:
            return
        settings.extend(NodeSetting(name, helper, None) for name, helper in helpers)
        settings.append(NodeSetting(node, value, key))

    add("PixelFormat", "pixel_format")
    # an offset left from an earlier session could make the new size out of range: zero it first
    add("Width", "width", (("OffsetX", 0),) if config.offset_x is not None else ())
    add("Height", "height", (("OffsetY", 0),) if config.offset_y is not None else ())
    add("OffsetX", "offset_x")
    add("OffsetY", "offset_y")
    add("ExposureTime", "exposure_time", (("ExposureAuto", "Off"),))
    add("Gain", "gain", (("GainAuto", "Off"),))
    trigger = str(config.trigger_mode).capitalize() if config.trigger_mode else None
    add("TriggerMode", "trigger_mode", (("TriggerSelector", "FrameStart"),), value=trigger)
    if trigger == "On":
        add("TriggerSource", "trigger_source")
    add("AcquisitionFrameRate", "frame_rate", (("AcquisitionFrameRateEnable", True),))
    return settings


def apply_settings(node_map, settings: list[NodeSetting]) -> dict[str, object]:
    """Write `settings`; return {node: value read back} for those written."""
    applied: dict[str, object] = {}
    for setting in settings:
        node = _writable_node(node_map, setting)
        if node is None:
            continue
        try:
            _check_range(node, setting)
            written = _write(node, setting)
        except CameraSettingError as exc:
            if setting.required:
                raise
            log.debug("helper %s not set: %s", setting.node, exc)
            continue
        if written:
            applied[setting.node] = _read_back(node, setting.value)
    if applied:
        log.info("camera settings applied: %s", applied)
    return applied


def _writable_node(node_map, setting: NodeSetting):
    if not node_map.has_node(setting.node):
        _skip(setting, "does not exist on this camera")
        return None
    node = node_map.get_node(setting.node)
    if not genapi.is_writable(node):
        _skip(setting, "is not writable")
        return None
    return node


def _skip(setting: NodeSetting, why: str) -> None:
    # a camera without triggers free-runs anyway: nothing to warn about for trigger_mode off
    harmless = setting.node == "TriggerMode" and setting.value == "Off"
    if setting.required and not harmless:
        log.warning(
            "camera node %s %s; camera.%s=%r is ignored",
            setting.node,
            why,
            setting.key,
            setting.value,
        )
    else:
        log.debug("camera node %s %s; not set", setting.node, why)


def _check_range(node, setting: NodeSetting) -> None:
    value = setting.value
    if isinstance(node, genapi.IEnumeration):
        entries = tuple(node.symbolics)
        if str(value) not in entries:
            _reject(setting, f"is not one of {', '.join(entries)}")
    elif isinstance(node, genapi.IInteger):
        low, high, step = node.min, node.max, node.inc
        if not float(value).is_integer():
            _reject(setting, "is not an integer")
        if not low <= int(value) <= high or (int(value) - low) % max(step, 1):
            _reject(setting, f"is out of range ({low}..{high}, step {step})")
    elif isinstance(node, genapi.IFloat):
        low, high = node.min, node.max
        if not low <= float(value) <= high:
            _reject(setting, f"is out of range ({low:g}..{high:g})")


def _write(node, setting: NodeSetting) -> bool:
    value = setting.value
    if isinstance(node, genapi.IInteger):
        value = int(value)
    elif isinstance(node, genapi.IFloat):
        value = float(value)
    elif isinstance(node, genapi.IBoolean):
        value = bool(value)
    elif isinstance(node, genapi.IEnumeration | genapi.IString):
        value = str(value)
    try:
        node.value = value
    except (genapi.OutOfRangeException, genapi.InvalidArgumentException) as exc:
        _reject(setting, f"was refused by the camera ({_first_sentence(exc)})")
    except genapi.AccessException:
        _skip(setting, "is not writable")
        return False
    return True


def _read_back(node, fallback: object) -> object:
    try:
        return node.value
    except genapi.GenericException:
        return fallback


def _reject(setting: NodeSetting, why: str) -> None:
    origin = f"camera.{setting.key}" if setting.key else f"camera node {setting.node}"
    raise CameraSettingError(f"{origin}={setting.value!r} for camera node {setting.node} {why}")


def _first_sentence(exc: Exception) -> str:
    return str(exc).split(" : ", 1)[0].strip()
