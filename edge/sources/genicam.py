"""Frames from a GigE Vision / USB3 Vision camera through its vendor's GenTL producer (harvesters).

Counters: `frames` (delivered), `timeouts` (reads that ended without a frame while connected),
`errors` (failed connects, fetch faults, unusable buffers), `reconnects` (connection attempts after
a loss), `dropped` (frames the camera numbered but never delivered, from gaps in its frame ids).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from genicam.gentl import TimeoutException
from harvesters.core import Harvester

from edge.backoff import Backoff
from edge.errors import ConfigError
from edge.sources.base import CameraState, Frame, FrameSource
from edge.sources.genicam_nodes import CameraSettingError, apply_settings, settings_from_config
from edge.sources.pixels import SUPPORTED_PIXEL_FORMATS, PixelFormatError, to_gray

log = logging.getLogger(__name__)

# Longest single GenTL wait: read() checks for close() at least this often.
POLL_S = 0.05
# How long the GenTL event wait inside harvesters' fetch blocks per call (ms); a new buffer ends it.
EVENT_WAIT_MS = 20
# Buffers announced to the producer: frames queue here while the grabber thread is descheduled;
# 16 ride out an 80 ms stall at 200 fps (8 dropped frames in a 75 ms stall on a loaded 2-core PC).
NUM_BUFFERS = 16
GENTL_PATH_VARIABLE = "GENICAM_GENTL64_PATH"


class _DeviceLost(Exception):
    """The camera stopped answering; the message says how."""


class GenICamSource(FrameSource):
    """`GenICamSource(camera_config)`: one camera chosen by serial, device id or index.

    `read()` runs in one grabber thread; `close()` may be called from any thread and makes a
    blocked `read()` return None within about POLL_S.
    """

    def __init__(self, config):
        self._config = config
        self._state = CameraState.STOPPED
        self._stop = threading.Event()
        self._device_lock = threading.Lock()  # serialises GenTL calls of read() and close()
        self._harvester: Harvester | None = None
        self._acquirer = None
        self._backoff = Backoff(config.reconnect.initial, config.reconnect.max)
        self._producers: list[Path] = []
        self._next_attempt = 0.0
        self._session = ""
        self._device_name = ""
        self._last_block_id: int | None = None
        self._last_alive = 0.0
        self._last_frame = 0.0
        self._counters = dict.fromkeys(("frames", "timeouts", "errors", "reconnects", "dropped"), 0)

    @property
    def state(self) -> CameraState:
        return self._state

    @property
    def counters(self) -> dict[str, int]:
        return dict(self._counters)

    @property
    def device_name(self) -> str:
        """`vendor model serial` of the connected camera ('' before the first connection)."""
        return self._device_name

    def open(self) -> None:
        """Connect once. A camera that is absent or faulty leaves the source LOST (read() retries);
        a producer file that is missing or a setting the camera rejects raises ConfigError."""
        self._producers = find_producers(self._config.cti)
        self._stop.clear()
        with self._device_lock:
            self._state = CameraState.CONNECTING
            self._backoff.reset()
            self._attempt_connect(initial=True)

    def read(self, timeout: float | None = None) -> Frame | None:
        deadline = time.monotonic() + (self._config.fetch_timeout if timeout is None else timeout)
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if self._acquirer is None:
                if not self._wait_for_attempt(remaining):
                    return None
                continue
            # harvesters waits forever on a zero timeout, so every slice is at least 1 ms
            frame = self._fetch(min(max(remaining, 1e-3), POLL_S))
            if frame is not None:
                return frame
            if deadline - time.monotonic() <= 0:
                if self._acquirer is not None:
                    self._counters["timeouts"] += 1
                    self._probe_if_quiet()
                return None
        return None

    def close(self) -> None:
        self._stop.set()
        with self._device_lock:
            self._disconnect()
            self._state = CameraState.STOPPED

    # -- connection ---------------------------------------------------------------------------

    def _wait_for_attempt(self, remaining: float) -> bool:
        """Sleep until the next reconnect attempt (interruptible by close()) and make it.
        Return False when the read's time runs out first."""
        wait = self._next_attempt - time.monotonic()
        if wait > remaining:
            self._stop.wait(max(remaining, 0.0))
            return False
        if wait > 0 and self._stop.wait(wait):
            return False
        with self._device_lock:
            if self._stop.is_set():
                return False
            self._counters["reconnects"] += 1
            self._attempt_connect(initial=False)
        return True

    def _attempt_connect(self, initial: bool) -> None:
        try:
            self._connect()
        except CameraSettingError as exc:
            self._disconnect()
            if initial:
                self._state = CameraState.STOPPED
                raise
            self._mark_lost(f"camera rejected the configuration: {exc}")
        except _DeviceLost as exc:
            self._disconnect()
            self._mark_lost(str(exc))
        except Exception as exc:  # noqa: BLE001 - any producer fault means "try again later"
            self._disconnect()
            self._mark_lost(_describe(exc))
        else:
            self._backoff.reset()
            self._state = CameraState.OK
            log.info("camera %s acquiring (session %s)", self._device_name, self._session)

    def _connect(self) -> None:
        harvester = Harvester()
        self._harvester = harvester
        for path in self._producers:
            harvester.add_file(str(path), check_existence=True)
        harvester.update()
        key = self._search_key()
        if not _has_device(harvester, key):
            raise _DeviceLost(f"no camera with {_describe_key(key)}; {_visible(harvester)}")
        acquirer = harvester.create(key)
        self._acquirer = acquirer
        acquirer.num_buffers = NUM_BUFFERS
        acquirer.timeout_period_on_update_event_data_call = EVENT_WAIT_MS
        node_map = acquirer.remote_device.node_map
        apply_settings(node_map, settings_from_config(self._config))
        _check_pixel_format(node_map)
        info = acquirer.device
        self._device_name = " ".join(
            _safe(info, field) for field in ("vendor", "model", "serial_number")
        )
        acquirer.start()
        # block ids restart at each start; the session stamp (ms) keeps frame ids unique
        now = datetime.now(UTC)
        self._session = f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z"
        self._last_block_id = None
        self._last_alive = self._last_frame = time.monotonic()

    def _search_key(self) -> dict | int:
        if self._config.serial:
            return {"serial_number": str(self._config.serial)}
        if self._config.device_id:
            return {"id_": str(self._config.device_id)}
        return int(self._config.index or 0)

    def _disconnect(self) -> None:
        acquirer, harvester = self._acquirer, self._harvester
        self._acquirer = self._harvester = None
        for what, release in (("acquirer", acquirer), ("harvester", harvester)):
            if release is None:
                continue
            try:
                release.destroy() if what == "acquirer" else release.reset()
            except Exception as exc:  # noqa: BLE001 - releasing a lost device may fail; we move on
                log.debug("releasing the %s failed: %s", what, _describe(exc))

    def _mark_lost(self, reason: str) -> None:
        self._counters["errors"] += 1
        delay = self._backoff.next_delay()
        self._next_attempt = time.monotonic() + delay
        self._state = CameraState.LOST
        log.warning("camera lost: %s; next attempt in %.1f s", reason, delay)

    def _lose(self, reason: str) -> None:
        with self._device_lock:
            self._disconnect()
            if not self._stop.is_set():
                self._mark_lost(reason)

    # -- acquisition --------------------------------------------------------------------------

    def _fetch(self, wait: float) -> Frame | None:
        with self._device_lock:
            acquirer = self._acquirer
            if acquirer is None or self._stop.is_set():
                return None
            try:
                with acquirer.fetch(timeout=wait) as buffer:
                    return self._to_frame(buffer)
            except TimeoutException:
                return None
            except PixelFormatError as exc:
                self._counters["errors"] += 1
                log.error("camera frame dropped: %s", exc)
                return None
            except Exception as exc:  # noqa: BLE001 - any other producer fault: device lost
                reason = _describe(exc)
        self._lose(reason)
        return None

    def _to_frame(self, buffer) -> Frame:
        acquired_at = time.time()
        component = buffer.payload.components[0]
        image = self._convert(component)
        block_id = int(buffer.frame_id)
        self._count_gap(block_id)
        self._counters["frames"] += 1
        self._last_alive = self._last_frame = time.monotonic()
        meta = {
            "camera": self._device_name,
            "device_frame_id": block_id,
            "device_timestamp": _device_timestamp(buffer),
            "pixel_format": component.data_format,
            "session": self._session,
        }
        return Frame(f"{self._session}-{block_id:08d}", acquired_at, image, meta)

    def _convert(self, component):
        width, height = int(component.width), int(component.height)
        data = component.data
        channels = component.num_components_per_pixel
        padding = int(getattr(component, "x_padding", 0) or 0)
        if data.size <= width * height * channels:
            padding = 0
        return to_gray(data, width, height, component.data_format, padding)

    def _count_gap(self, block_id: int) -> None:
        last = self._last_block_id
        if last is not None and block_id > last + 1:
            self._counters["dropped"] += block_id - last - 1
        self._last_block_id = block_id

    def _probe_if_quiet(self) -> None:
        """A pulled cable often shows only as silence: after `fetch_timeout` s without a frame or
        probe, read a node past GenApi's cache; if the camera does not answer, it is lost.
        In free run a camera that answers but sends nothing has stalled (its acquisition was
        stopped, its stream broke): it is lost too, so that reconnecting restarts acquisition."""
        if time.monotonic() - self._last_alive < self._config.fetch_timeout:
            return
        stalled = self._free_run_silence()
        if stalled is not None:
            self._lose(f"no frame for {stalled:.1f} s in free run (acquisition stalled)")
            return
        with self._device_lock:
            acquirer = self._acquirer
            if acquirer is None:
                return
            try:
                acquirer.remote_device.node_map.get_node("Width").to_string(False, True)
                self._last_alive = time.monotonic()
                return
            except Exception as exc:  # noqa: BLE001
                reason = f"camera does not answer ({_describe(exc)})"
        self._lose(reason)

    def _free_run_silence(self) -> float | None:
        """Seconds without a frame in free run once that is at least `fetch_timeout` and three
        frame periods; None while frames may still be on their way (or in trigger mode)."""
        if self._config.trigger_mode != "off":
            return None
        rate = self._config.frame_rate
        allowed = max(self._config.fetch_timeout, 3.0 / rate if rate else 0.0)
        silent = time.monotonic() - self._last_frame
        return silent if silent >= allowed else None


def find_producers(configured: list[Path]) -> list[Path]:
    """The configured .cti files, or else every .cti in the folders of $GENICAM_GENTL64_PATH (where
    vendor SDKs register their producers). Raises ConfigError when there is none to load."""
    for path in configured:
        if not Path(path).is_file():
            raise ConfigError(f"camera.cti: GenTL producer file {path} does not exist")
    if configured:
        return [Path(path) for path in configured]
    folders = [f for f in os.environ.get(GENTL_PATH_VARIABLE, "").split(os.pathsep) if f]
    found = sorted(p for folder in folders for p in Path(folder).glob("*.cti") if p.is_file())
    if not found:
        raise ConfigError(
            f"camera.cti: no GenTL producer given and no .cti file in ${GENTL_PATH_VARIABLE} "
            f"({os.pathsep.join(folders) or 'unset'})"
        )
    return found


def list_cameras(producers: list[Path]) -> list[dict[str, str]]:
    """The cameras the producers see now: index, serial, id, vendor, model (for choosing one)."""
    harvester = Harvester()
    try:
        for path in producers:
            harvester.add_file(str(path), check_existence=True)
        harvester.update()
        fields = ("serial_number", "id_", "vendor", "model")
        return [
            {"index": str(index), **{field: _safe(info, field) for field in fields}}
            for index, info in enumerate(harvester.device_info_list)
        ]
    finally:
        harvester.reset()


def _main(argv: list[str]) -> int:
    """`python -m edge.sources.genicam [PRODUCER.cti ...]`: print the visible cameras."""
    try:
        producers = find_producers([Path(arg) for arg in argv])
    except ConfigError as exc:
        print(f"genicam: error: {exc}", file=sys.stderr)
        return 2
    cameras = list_cameras(producers)
    for camera in cameras:
        print("  ".join(f"{key}={value}" for key, value in camera.items()))
    return 0 if cameras else 1


def _check_pixel_format(node_map) -> None:
    if not node_map.has_node("PixelFormat"):
        return
    current = node_map.get_node("PixelFormat").value
    if current not in SUPPORTED_PIXEL_FORMATS:
        raise CameraSettingError(
            f"camera pixel format {current} is not supported; set camera.pixel_format to one of "
            f"{', '.join(SUPPORTED_PIXEL_FORMATS)}"
        )


def _has_device(harvester: Harvester, key: dict | int) -> bool:
    devices = harvester.device_info_list
    if isinstance(key, int):
        return 0 <= key < len(devices)
    ((attribute, wanted),) = key.items()
    return any(_safe(info, attribute) == wanted for info in devices)


def _visible(harvester: Harvester) -> str:
    devices = [
        f"#{index} serial={_safe(info, 'serial_number')} id={_safe(info, 'id_')} "
        f"model={_safe(info, 'model')}"
        for index, info in enumerate(harvester.device_info_list)
    ]
    return "visible: " + ("; ".join(devices) if devices else "none")


def _describe_key(key: dict | int) -> str:
    if isinstance(key, int):
        return f"index {key}"
    ((attribute, wanted),) = key.items()
    return f"{'serial' if attribute == 'serial_number' else 'device id'} {wanted!r}"


def _safe(info, attribute: str) -> str:
    try:
        return str(getattr(info, attribute))
    except Exception:  # noqa: BLE001 - producers may not implement every info field
        return "?"


def _device_timestamp(buffer) -> int | None:
    try:
        return int(buffer.timestamp)
    except Exception:  # noqa: BLE001 - not every producer reports timestamps
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc).split(" (file ", 1)[0].strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
