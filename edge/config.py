"""The daemon's configuration file (/etc/steel-inspect/edge.toml), validated with pydantic.

Every section forbids unknown keys and every field carries a description (docs/edge.md is written
from them). Relative paths are resolved against the folder of the configuration file. Errors are
raised as one-line `ConfigError`s naming the file and the key, e.g.
`edge.toml: mqtt.port: Input should be less than or equal to 65535 (got 70000)`.
"""

from __future__ import annotations

import logging
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from edge.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("/etc/steel-inspect/edge.toml")


def _resolve_path(path: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    try:
        path = path.expanduser()
    except RuntimeError:  # ~name of a user this machine does not know
        raise ValueError(f"cannot expand {str(path).split('/')[0]}: no such user") from None
    return path if path.is_absolute() or base is None else Path(base) / path


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, (str, Path)) else value


# MQTT encodes every string (topic, client id, user name, password) with a 2-byte length
MQTT_STRING_MAX_BYTES = 65535
MAX_BATCH_LIMIT = 1024
# the longest topic the daemon publishes is PREFIX/LINE/CAMERA/ + the longest of these
TOPIC_SUFFIXES = ("status", "defects", "stats", "check")
# the longest any timer may be: threading and select() reject larger timeouts (OverflowError)
TIMER_MAX_S = 86400.0


def _control_characters(value: str) -> list[str]:
    """C0/C1 control characters: MQTT forbids U+0000 and brokers drop clients sending others."""
    return sorted({f"U+{ord(ch):04X}" for ch in value if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0})


def _check_mqtt_string(value: str) -> str:
    bad = _control_characters(value)
    if bad:
        raise ValueError(f"must not contain control characters ({', '.join(bad)})")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MQTT_STRING_MAX_BYTES:
        raise ValueError(f"is {size} bytes in UTF-8; MQTT strings hold at most "
                         f"{MQTT_STRING_MAX_BYTES}")
    return value


def _check_topic_level(value: str) -> str:
    if any(ch in value for ch in "/+#\0") or not value.strip():
        raise ValueError("must be a non-empty MQTT topic level without '/', '+', '#'")
    return _check_mqtt_string(value)


def _check_topic_prefix(value: str) -> str:
    """The prefix without leading/trailing '/' (the value every topic is built from)."""
    if any(ch in value for ch in "+#\0") or not value.strip("/"):
        raise ValueError("must be a non-empty MQTT topic without '+' or '#'")
    value = value.strip("/")
    if "//" in value:
        raise ValueError("must not contain an empty topic level ('//')")
    if value.startswith("$"):
        raise ValueError("must not start with '$' (brokers reserve $ topics, e.g. $SYS, and "
                         "drop what clients publish there)")
    return _check_mqtt_string(value)


def _check_topic_filter(value: str) -> str:
    levels = value.split("/")
    bad_wildcard = any(
        ("+" in level and level != "+") or ("#" in level and (level != "#" or i < len(levels) - 1))
        for i, level in enumerate(levels)
    )
    if not value or "\0" in value or value.startswith("$") or bad_wildcard:
        raise ValueError("must be an MQTT topic (filter) not starting with '$'")
    return value


ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]
TopicLevel = Annotated[str, AfterValidator(_check_topic_level)]
TopicPrefix = Annotated[str, AfterValidator(_check_topic_prefix)]
MqttString = Annotated[str, AfterValidator(_check_mqtt_string)]


class Section(BaseModel):
    # inf/nan would pass the range checks and break timers later (e.g. a join(inf) at shutdown)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Backoff(Section):
    initial: float = Field(1.0, gt=0, le=3600, description="first retry delay in seconds")
    max: float = Field(
        30.0, gt=0, le=3600, description="longest retry delay in seconds (doubling up to it)"
    )

    @model_validator(mode="after")
    def _ordered(self) -> Backoff:
        if self.max < self.initial:
            raise ValueError(f"max ({self.max}) must be >= initial ({self.initial})")
        return self


class SiteConfig(Section):
    line: TopicLevel = Field(description="production line id; a topic level, e.g. 'L1'")
    camera: TopicLevel = Field(description="camera id on that line; a topic level, e.g. 'cam1'")


class GenICamCameraConfig(Section):
    type: Literal["genicam"] = Field(description="a GenICam camera through a GenTL producer")
    cti: Annotated[list[ConfigPath], BeforeValidator(_as_list)] = Field(
        default_factory=list,
        description="GenTL producer .cti file(s); empty = the ones in $GENICAM_GENTL64_PATH",
    )
    serial: str | None = Field(None, description="select the device by serial number")
    device_id: str | None = Field(None, description="select the device by its GenTL device id")
    index: int | None = Field(
        None, ge=0, description="select the device by enumeration index (default 0)"
    )
    pixel_format: str = Field("Mono8", description="GenICam PixelFormat; frames become uint8 gray")
    width: int | None = Field(
        None, ge=1, description="sensor ROI width in px (unset = as the camera has it)"
    )
    height: int | None = Field(
        None, ge=1, description="sensor ROI height in px (unset = as the camera has it)"
    )
    offset_x: int | None = Field(None, ge=0, description="sensor ROI x offset in px")
    offset_y: int | None = Field(None, ge=0, description="sensor ROI y offset in px")
    exposure_time: float | None = Field(
        None, gt=0, description="ExposureTime in microseconds (unset = as the camera has it)"
    )
    gain: float | None = Field(None, ge=0, description="Gain in dB (unset = as the camera has it)")
    trigger_mode: Literal["off", "on"] = Field(
        "off", description="TriggerMode: off = free run, on = one frame per trigger"
    )
    trigger_source: str = Field(
        "Line0", description="TriggerSource when trigger_mode is on (e.g. Line0, Software)"
    )
    frame_rate: float | None = Field(
        None, gt=0,
        description="AcquisitionFrameRate in frames/s for free run (unset = as the camera has it)",
    )
    fetch_timeout: float = Field(
        1.0, gt=0, le=60, description="seconds to wait for one buffer before checking the camera"
    )
    reconnect: Backoff = Field(
        default_factory=Backoff, description="backoff between attempts to reopen a lost camera"
    )

    @model_validator(mode="after")
    def _one_selector(self) -> GenICamCameraConfig:
        chosen = [k for k in ("serial", "device_id", "index") if getattr(self, k) is not None]
        if len(chosen) > 1:
            raise ValueError(f"choose the device by one of serial, device_id, index; got {chosen}")
        return self


class ReplayCameraConfig(Section):
    type: Literal["replay"] = Field(description="a folder of images replayed as camera frames")
    path: ConfigPath = Field(description="folder of images (.jpg .png .bmp .tif), sorted by name")
    rate: float = Field(
        0, ge=0, le=10000, description="frames per second; 0 = as fast as possible"
    )
    loop: bool = Field(False, description="start again at the first image after the last one")
    width: int | None = Field(
        None, ge=1, description="expected image width in px (unset = that of the first image)"
    )
    height: int | None = Field(
        None, ge=1, description="expected image height in px (unset = that of the first image)"
    )


CameraConfig = Annotated[
    GenICamCameraConfig | ReplayCameraConfig, Field(discriminator="type")
]


class ModelConfig(Section):
    path: ConfigPath = Field(
        description="model file: an engine (.onnx for onnxruntime) with its gate-passed "
        "manifest PATH.json; or the model store of `edge model install` (e.g. "
        "/var/lib/steel-inspect/models, or its `current`): the version current names when "
        "loading (also on reload); a bare .onnx (card from modelcard.json) needs allow_ungated"
    )
    backend: Literal["onnxruntime", "tensorrt"] = Field(
        "onnxruntime", description="inference backend"
    )
    max_batch: int | None = Field(
        None, ge=1, le=MAX_BATCH_LIMIT,
        description="most tiles per inference call (a 256x256 tile batch of 1024 is 64 MiB); "
        "unset = the tiles of one frame (from tiling.roi, camera.width/height or the first "
        "replay image; 8 when only the camera knows)",
    )
    threads: int = Field(
        0, ge=0, le=256, description="CPU threads for onnxruntime; 0 = physical cores minus one"
    )
    allow_ungated: bool = Field(
        False, description="commissioning only: run a model whose gate did not pass or a bare "
        "ONNX without a manifest (warned in the log, the birth message and edge check)",
    )


class RegionOfInterest(Section):
    x: int = Field(0, ge=0, le=65535, description="left edge in frame pixels")
    y: int = Field(0, ge=0, le=65535, description="top edge in frame pixels")
    width: int = Field(ge=1, le=65535, description="width in pixels (at least one tile)")
    height: int = Field(ge=1, le=65535, description="height in pixels (at least one tile)")


class TilingConfig(Section):
    stride: int | None = Field(
        None, ge=1, le=65535,
        description="tile step in px, at most the tile size; default = the tile size (no overlap)",
    )
    overlap: int | None = Field(
        None, ge=0, le=65535,
        description="overlap of neighbouring tiles in px, less than the tile size (instead of "
        "stride)",
    )
    roi: RegionOfInterest | None = Field(
        None, description="only this part of the frame is tiled; default = the whole frame"
    )

    @model_validator(mode="after")
    def _stride_or_overlap(self) -> TilingConfig:
        if self.stride is not None and self.overlap is not None:
            raise ValueError("set stride or overlap, not both")
        return self

    def stride_for(self, tile: int) -> int:
        if self.stride is not None:
            return self.stride
        return tile - (self.overlap or 0)

    def problem_with(self, tile: int) -> str | None:
        """Why this tiling cannot cut frames into the model's `tile` px tiles (None if it can)."""
        if self.stride is not None and self.stride > tile:
            return (f"tiling.stride: {self.stride} is more than the model's {tile} px tile "
                    "(pixels between tiles would never be inspected)")
        if self.overlap is not None and self.overlap >= tile:
            return f"tiling.overlap: {self.overlap} must be less than the model's {tile} px tile"
        roi = self.roi
        if roi is not None and (roi.width < tile or roi.height < tile):
            return (f"tiling.roi: {roi.width}x{roi.height} is smaller than the model's "
                    f"{tile}x{tile} tile")
        return None


class EventsConfig(Section):
    thresholds: dict[str, Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=dict,
        description="per-class threshold overrides by class name, e.g. {scratches = 0.7}; "
        "other classes use the model card's thresholds",
    )
    min_score: float = Field(
        0.0, ge=0, lt=1, description="a tile is reported only if its score is at least this too"
    )


class MqttConfig(Section):
    host: str = Field(description="broker host name or address")
    port: int = Field(1883, ge=1, le=65535, description="broker TCP port (8883 is usual for TLS)")
    tls: bool = Field(False, description="use TLS (on automatically when ca_file is set)")
    ca_file: ConfigPath | None = Field(
        None, description="CA certificate(s) to verify the broker; default = system CAs"
    )
    cert_file: ConfigPath | None = Field(None, description="client certificate for mutual TLS")
    key_file: ConfigPath | None = Field(None, description="private key of cert_file")
    username: MqttString | None = Field(
        None, description="user name for broker authentication"
    )
    password_file: ConfigPath | None = Field(
        None, description="file whose first line is the password (never put it in this file)"
    )
    password_credential: str | None = Field(
        None,
        description="name of a systemd credential holding the password "
        "(read from $CREDENTIALS_DIRECTORY/NAME; see LoadCredential=)",
    )
    client_id: MqttString | None = Field(
        None, description="MQTT client id; default steel-inspect-LINE-CAMERA"
    )
    topic_prefix: TopicPrefix = Field(
        "steel-inspect",
        description="first topic levels: PREFIX/LINE/CAMERA/...; leading and trailing '/' are "
        "removed, '$' topics are refused",
    )
    qos: Literal[1, 2] = Field(1, description="QoS of defect events (1 = at least once)")
    protocol: Literal["3.1.1", "5"] = Field(
        "3.1.1",
        description="MQTT version. With 5 the broker can refuse a single event (e.g. its ACL "
        "denies the topic) and the daemon keeps it and says so; a 3.1.1 broker acknowledges "
        "such an event and drops it unseen. Use 5 where the broker supports it",
    )
    keepalive: int = Field(30, ge=5, le=65535, description="MQTT keepalive in seconds")
    stats_interval: float = Field(
        10.0, gt=0, le=TIMER_MAX_S, description="seconds between stats messages"
    )
    reconnect: Backoff = Field(
        default_factory=lambda: Backoff(initial=1.0, max=30.0),
        description="backoff between broker connection attempts",
    )
    max_inflight: int = Field(
        20, ge=1, le=1000, description="events sent but not yet acknowledged, at most"
    )
    flush_timeout: float = Field(
        10.0, ge=0, le=3600,
        description="seconds to keep sending the outbox after SIGTERM (keep systemd's "
        "TimeoutStopSec above it)",
    )
    event_schema: Literal["v1", "v2"] = Field(
        "v2",
        description="defect event payload: v2 (coil, strip position, one object per defect) or "
        "v1 (one entry per tile, for subscribers written against it)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> MqttConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("set both cert_file and key_file, or neither")
        if self.password_file is not None and self.password_credential is not None:
            raise ValueError("set password_file or password_credential, not both")
        if (self.password_file or self.password_credential) and not self.username:
            raise ValueError("a password needs a username")
        return self

    @property
    def use_tls(self) -> bool:
        return self.tls or self.ca_file is not None or self.cert_file is not None

    def password_source(self) -> Path | None:
        """Where the password is read from (the file, or the systemd credential), if any."""
        if self.password_file is not None:
            return self.password_file
        if self.password_credential is not None:
            directory = os.environ.get("CREDENTIALS_DIRECTORY")
            if not directory:
                raise ConfigError(
                    "mqtt.password_credential: $CREDENTIALS_DIRECTORY is not set "
                    "(run under systemd with LoadCredential=)"
                )
            return Path(directory) / self.password_credential
        return None

    def read_password(self) -> str | None:
        path = self.password_source()
        if path is None:
            return None
        key = "password_file" if self.password_file is not None else "password_credential"
        _warn_if_others_can_read(path, key)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"mqtt.{key}: cannot read {path}: {exc.strerror}") from None
        return _password_from(data, path, key)


def _password_from(data: bytes, path: Path, key: str) -> str:
    """The first line of a password file; errors never show any of its bytes."""
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"mqtt.{key}: {path} is not UTF-8 text (invalid byte at offset "
                          f"{exc.start}); save the password as UTF-8") from None
    password = lines[0] if lines else ""
    size = len(password.encode())
    if size > MQTT_STRING_MAX_BYTES:
        raise ConfigError(f"mqtt.{key}: {path} holds a password of {size} bytes; MQTT allows "
                          f"at most {MQTT_STRING_MAX_BYTES}")
    return password


def _warn_if_others_can_read(path: Path, key: str) -> None:
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return  # reading it fails next, with the reason
    if mode & 0o077:
        log.warning(
            "mqtt.%s: %s can be read by other users (mode %04o); make it readable by the "
            "daemon's user only (chmod 600)", key, path, mode,
        )


class OutboxConfig(Section):
    path: ConfigPath = Field(description="SQLite file holding events until the broker acks them")
    max_mb: float = Field(
        256.0, gt=0, le=1e6,
        description="payload megabytes kept at most; the oldest are dropped beyond",
    )


class TrackingConfig(Section):
    source: Literal["none", "mqtt", "opcua"] = Field(
        "none",
        description="where the coil id comes from: none (coil_id null, positions count from "
        "daemon start), mqtt (a JSON message per coil change on `topic`) or opcua (nodes of an "
        "OPC UA server)",
    )
    topic: Annotated[str, AfterValidator(_check_topic_filter)] | None = Field(
        None, max_length=1024,
        description="mqtt: topic of the L2 coil messages {coil_id, speed_m_s, length_m} "
        "(subscribed with QoS 1 on the daemon's broker connection; retained messages count)",
    )
    endpoint: str | None = Field(
        None, max_length=4096,
        description="opcua: server endpoint, e.g. opc.tcp://l2-server:4840",
    )
    coil_node: str | None = Field(
        None, max_length=1024, description="opcua: node id of the coil id, e.g. ns=2;s=Coil.Id"
    )
    speed_node: str | None = Field(
        None, max_length=1024,
        description="opcua: node id of the strip speed in m/s (optional)",
    )
    length_node: str | None = Field(
        None, max_length=1024,
        description="opcua: node id of the coil length in m that L2 reports (optional)",
    )
    username: str | None = Field(None, max_length=1024, description="opcua: user name")
    password_file: ConfigPath | None = Field(
        None, description="opcua: file whose first line is the password"
    )
    security: str | None = Field(
        None, max_length=8192,
        description="opcua: asyncua security string POLICY,MODE,CERT,KEY[,SERVER_CERT], e.g. "
        "Basic256Sha256,SignAndEncrypt,/etc/steel-inspect/opcua.der,/etc/steel-inspect/opcua.pem",
    )
    timeout: float = Field(
        4.0, gt=0, le=600, description="opcua: seconds for connecting and for each request"
    )
    reconnect: Backoff = Field(
        default_factory=Backoff, description="opcua: backoff between reconnection attempts"
    )

    @model_validator(mode="after")
    def _needs(self) -> TrackingConfig:
        if self.source == "mqtt" and not self.topic:
            raise ValueError("source = \"mqtt\" needs tracking.topic")
        if self.source == "opcua" and not (self.endpoint and self.coil_node):
            raise ValueError("source = \"opcua\" needs tracking.endpoint and tracking.coil_node")
        if self.endpoint is not None and not self.endpoint.startswith("opc.tcp://"):
            raise ValueError(f"endpoint must start with opc.tcp:// (got {self.endpoint!r})")
        return self


class GeometryConfig(Section):
    """Image x runs across the strip (CD), y along it (MD); row 0 is the first row acquired."""

    mm_per_px_cd: float = Field(
        1.0, gt=0, le=1000, description="millimetres per pixel across the strip (image x)"
    )
    mm_per_px_md: float = Field(
        1.0, gt=0, le=1000, description="millimetres per pixel along the strip (image y)"
    )
    cd_origin: Literal["left", "right"] = Field(
        "left", description="which image side faces the drive-side edge of the strip"
    )
    cd_offset_mm: float = Field(
        0.0, ge=-1e5, le=1e5,
        description="where that image side lies, in mm from the drive-side edge (cameras side by "
        "side over a wide strip each set their own, so their defects share one CD frame)",
    )
    side: Literal["top", "bottom"] = Field("top", description="strip surface this camera sees")
    md_source: Literal["frames", "speed"] = Field(
        "frames",
        description="frames: an encoder-triggered line-scan camera, each frame advances "
        "height x mm_per_px_md; speed: a free-running camera, MD advances by the tracking speed "
        "(or `speed_m_s`) integrated over acquisition timestamps",
    )
    speed_m_s: float | None = Field(
        None, gt=0, le=100,
        description="strip speed in m/s for md_source = speed until tracking reports one",
    )


class PipelineConfig(Section):
    frame_queue: int = Field(
        4, ge=1, le=256,
        description="frames waiting for inference at most; the oldest are dropped",
    )
    event_queue: int = Field(
        10000, ge=1, le=1_000_000,
        description="events waiting to be written to the outbox at most",
    )


class LoggingConfig(Section):
    level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR"],
        BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v),
    ] = Field("INFO", description="log level: DEBUG, INFO, WARNING or ERROR")


class ArchiveConfig(Section):
    enabled: bool = Field(True, description="write defect images and coil maps at all")
    path: ConfigPath | None = Field(
        None,
        description="archive root; default: the folder `archive` beside outbox.path (the "
        "service's StateDirectory, /var/lib/steel-inspect/archive). Events and coil reports "
        "name files relative to it",
    )
    max_gb: float = Field(
        20.0, gt=0, le=100_000,
        description="gigabytes of images kept at most; the oldest files are deleted beyond",
    )
    max_days: float = Field(
        90.0, gt=0, le=36_500, description="days an image is kept at most (by file age)"
    )
    margin_px: int = Field(
        32, ge=0, le=4096, description="pixels added around each defect box in its crop"
    )
    whole_frame: bool = Field(
        False, description="also keep the whole frame of each defect (one file per frame)"
    )
    jpeg_quality: int = Field(90, ge=10, le=100, description="JPEG quality of the images")
    queue: int = Field(
        256, ge=1, le=100_000,
        description="images waiting for the disk at most; beyond, images are dropped (counted), "
        "never the events",
    )
    retention_interval_s: float = Field(
        60.0, gt=0, le=86_400, description="seconds between two retention sweeps"
    )
    map_width_px: int = Field(
        1600, ge=400, le=8000, description="width of the coil defect map PNG (the MD axis)"
    )
    latest_frame_s: float = Field(
        1.0, ge=0, le=3600,
        description="seconds between two 'latest frame' files (latest/CAMERA.jpg and .json with "
        "the tile scores) for the console's live and commissioning views; 0 = none",
    )


# --- plant integration sections, each in its own file (they import Section from above) ---
# --- [console] (issue 18): its section class lives with the console; imported here, after Section
# and ConfigPath exist, because edge/console/config.py builds on them.
from edge.console.config import ConsoleConfig  # noqa: E402
from edge.control.commands_config import CommandsConfig  # noqa: E402
from edge.delivery.sparkplug_config import SparkplugConfig  # noqa: E402
from edge.observe.metrics_config import MetricsConfig  # noqa: E402


class EdgeConfig(Section):
    site: SiteConfig = Field(description="Where this daemon sits: line and camera ids")
    camera: CameraConfig = Field(
        description="The frame source: a GenICam camera or a folder of images"
    )
    model: ModelConfig = Field(description="The model and how to run it")
    tiling: TilingConfig = Field(
        default_factory=TilingConfig, description="How frames are cut into model-sized tiles"
    )
    events: EventsConfig = Field(
        default_factory=EventsConfig, description="When a tile counts as a defect"
    )
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig, description="Coil tracking input from the L2 system"
    )
    geometry: GeometryConfig = Field(
        default_factory=GeometryConfig,
        description="Strip coordinates: pixel sizes, camera position across the strip, surface",
    )
    archive: ArchiveConfig = Field(
        default_factory=ArchiveConfig,
        description="Defect images and coil maps on disk (events v2)",
    )
    mqtt: MqttConfig = Field(description="The MQTT broker the events go to")
    outbox: OutboxConfig = Field(description="The store-and-forward queue on disk")
    pipeline: PipelineConfig = Field(
        default_factory=PipelineConfig, description="Queue sizes between the threads"
    )
    logging: LoggingConfig = Field(
        default_factory=LoggingConfig, description="Log verbosity (logs go to stdout/journald)"
    )
    console: ConsoleConfig = Field(
        default_factory=ConsoleConfig,
        description="The inspection console (`edge console`): web page address, access, archive",
    )
    # --- plant integration ---
    sparkplug: SparkplugConfig = Field(
        default_factory=SparkplugConfig,
        description="Sparkplug B 3.0 edge node on the [mqtt] broker (off by default)",
    )
    metrics: MetricsConfig = Field(
        default_factory=MetricsConfig,
        description="Prometheus /metrics and /healthz over HTTP (off by default)",
    )
    commands: CommandsConfig = Field(
        default_factory=CommandsConfig,
        description="Commands from SCADA over MQTT 5 request/response (off by default)",
    )

    @property
    def archive_root(self) -> Path:
        """Where defect images, coil maps and latest frames go: archive.path, else `archive`
        beside the outbox (the service's StateDirectory)."""
        return self.archive.path or Path(self.outbox.path).parent / "archive"

    @model_validator(mode="after")
    def _fits_mqtt_and_camera(self) -> EdgeConfig:
        base = f"{self.mqtt.topic_prefix}/{self.site.line}/{self.site.camera}/"
        longest = len(base.encode()) + max(map(len, TOPIC_SUFFIXES))
        if longest > MQTT_STRING_MAX_BYTES:
            parts = {"mqtt.topic_prefix": self.mqtt.topic_prefix, "site.line": self.site.line,
                     "site.camera": self.site.camera}
            key = max(parts, key=lambda k: len(parts[k].encode()))
            raise ValueError(
                f"{key}: makes topics (PREFIX/LINE/CAMERA/defects) of {longest} bytes; "
                f"MQTT topics hold at most {MQTT_STRING_MAX_BYTES}"
            )
        roi, camera = self.tiling.roi, self.camera
        if roi is not None and camera.width is not None and roi.x + roi.width > camera.width:
            raise ValueError(f"tiling.roi: x {roi.x} + width {roi.width} is beyond "
                             f"camera.width {camera.width}")
        if roi is not None and camera.height is not None and roi.y + roi.height > camera.height:
            raise ValueError(f"tiling.roi: y {roi.y} + height {roi.height} is beyond "
                             f"camera.height {camera.height}")
        return self


def load_config(path: Path | str) -> EdgeConfig:
    """Read and validate a configuration file; raises ConfigError with a one-line message."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return parse_config(raw, source=str(path), base_dir=path.resolve().parent)


def parse_config(raw: dict, source: str = "config", base_dir: Path | None = None) -> EdgeConfig:
    try:
        return EdgeConfig.model_validate(raw, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_error(exc.errors()[0])}") from None


def describe_error(error: dict) -> str:
    """One pydantic error as `key.path: message (got VALUE)`."""
    loc = list(error["loc"])
    if len(loc) >= 2 and loc[0] == "camera" and loc[1] in ("genicam", "replay"):
        del loc[1]  # the union tag pydantic adds to the location
    where = ".".join(str(p) for p in loc) or "(top level)"
    kind, message = error["type"], error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if not loc and kind == "value_error":  # a check across sections names its keys itself
        return message
    if kind == "extra_forbidden":
        return f"{where}: unknown key"
    if kind == "missing":
        return f"{where}: required key is missing"
    if kind == "union_tag_not_found":
        return f"{where}.type: required key is missing (genicam or replay)"
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag")
        return f"{where}.type: must be genicam or replay (got {tag!r})"
    value = error.get("input")
    if isinstance(value, (dict, list)):
        return f"{where}: {message}"
    return f"{where}: {message} (got {_shown(value)})"


def _shown(value, limit: int = 80) -> str:
    """repr(value), cut in the middle when long: an error line stays readable."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}...{text[-limit // 4 :]} ({len(str(value))} characters)"


def reference_markdown() -> str:
    """The configuration reference of docs/edge.md, generated from the field descriptions."""
    out = []
    for section, field in EdgeConfig.model_fields.items():
        models = _section_models(field.annotation)
        for model in models:
            title = f"[{section}]"
            if len(models) > 1:
                title += f' type = "{model.model_fields["type"].annotation.__args__[0]}"'
            required = " (required)" if field.is_required() else ""
            out += [f"### `{title}`{required}", "", field.description + ".", ""]
            out += ["| key | type | default | description |", "|---|---|---|---|"]
            out += [_row(key, f) for key, f in _flat_fields(model)]
            out.append("")
    return "\n".join(out)


def _section_models(annotation) -> list[type[BaseModel]]:
    args = getattr(annotation, "__args__", None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in args or () for m in _section_models(a)]


def _flat_fields(model: type[BaseModel], prefix: str = ""):
    for name, field in model.model_fields.items():
        nested = [m for m in _section_models(field.annotation) if m is not model]
        if nested and field.get_default(call_default_factory=True) is not None:
            yield from _flat_fields(nested[0], f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field


def _row(key: str, field) -> str:
    if field.is_required():
        default = "required"
    else:
        value = field.get_default(call_default_factory=True)
        default = "unset" if value is None else f"`{_toml(value)}`"
    return f"| `{key}` | {_type_name(field.annotation)} | {default} | {field.description} |"


def _type_name(annotation) -> str:
    import typing  # noqa: PLC0415

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return " \\| ".join(f"`{_toml(a)}`" for a in args)
    if origin in (typing.Union, type(int | None)):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is list:
        return f"list of {_type_name(args[0])}s"
    if origin is dict:
        return f"table of {_type_name(args[1])}s"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table {" + ", ".join(annotation.model_fields) + "}"
    names = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict) and not value:
        return "{}"
    if isinstance(value, list) and not value:
        return "[]"
    if isinstance(value, BaseModel):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.model_dump().items()) + " }"
    return str(value)


if __name__ == "__main__":
    print(reference_markdown())
