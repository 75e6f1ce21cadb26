"""GenICamSource against the real viky.cti GenTL producer, and the pixel conversions on arrays."""

from __future__ import annotations

import logging
import threading
import time

import cv2
import numpy as np
import pytest

from edge.backoff import Backoff
from edge.errors import ConfigError
from edge.sources.base import CameraState
from edge.sources.genicam import GenICamSource, find_producers, list_cameras
from edge.sources.genicam_nodes import settings_from_config
from edge.sources.pixels import SUPPORTED_PIXEL_FORMATS, PixelFormatError, to_gray

# -- pixel conversions ------------------------------------------------------------------------

BT601 = np.array([0.299, 0.587, 0.114])  # R, G, B weights of OpenCV's gray conversion


def bayer_mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Sample an HxWx3 RGB image through a colour filter array; `pattern` is the top-left 2x2 read
    row by row (PFNC BayerRG8 = "RGGB")."""
    mosaic = np.empty(rgb.shape[:2], np.uint8)
    channel = {"R": 0, "G": 1, "B": 2}
    for index, colour in enumerate(pattern):
        dy, dx = divmod(index, 2)
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, channel[colour]]
    return mosaic


@pytest.mark.parametrize(
    "pixel_format, pattern",
    [("BayerRG8", "RGGB"), ("BayerGR8", "GRBG"), ("BayerBG8", "BGGR"), ("BayerGB8", "GBRG")],
)
def test_bayer_demosaic_gives_the_bt601_gray_of_the_scene(pixel_format, pattern):
    # a colour whose gray changes by > 40 levels if R and B (or G and R/B) were mixed up
    colour = np.array([230, 120, 20], np.uint8)
    scene = np.broadcast_to(colour, (16, 24, 3))
    mosaic = bayer_mosaic(scene, pattern)

    gray = to_gray(mosaic.ravel(), 24, 16, pixel_format)

    assert gray.shape == (16, 24) and gray.dtype == np.uint8
    expected = float(colour @ BT601)  # 141.5
    interior = gray[2:-2, 2:-2].astype(float)
    assert np.abs(interior - expected).max() <= 2.0


@pytest.mark.parametrize(
    "pixel_format, channels, code",
    [
        ("RGB8", 3, cv2.COLOR_RGB2GRAY),
        ("BGR8", 3, cv2.COLOR_BGR2GRAY),
        ("RGBa8", 4, cv2.COLOR_RGBA2GRAY),
        ("BGRa8", 4, cv2.COLOR_BGRA2GRAY),
    ],
)
def test_colour_formats_match_opencv_and_channel_order(pixel_format, channels, code):
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (5, 7, channels), dtype=np.uint8)
    gray = to_gray(pixels.ravel(), 7, 5, pixel_format)
    np.testing.assert_array_equal(gray, cv2.cvtColor(pixels, code))

    red_first = pixel_format.startswith("RGB")
    pure_red = np.zeros((1, 1, channels), np.uint8)
    pure_red[..., 0 if red_first else 2] = 255
    assert to_gray(pure_red.ravel(), 1, 1, pixel_format)[0, 0] == 76  # 0.299 * 255


def test_mono8_is_copied_and_line_padding_is_dropped():
    width, height, padding = 5, 3, 3
    padded = np.arange(height * (width + padding), dtype=np.uint8)
    gray = to_gray(padded, width, height, "Mono8", line_padding=padding)
    expected = padded.reshape(height, width + padding)[:, :width]
    np.testing.assert_array_equal(gray, expected)
    assert gray.flags.c_contiguous and not np.shares_memory(gray, padded)

    without_last_padding = padded[:-padding]  # some producers omit the last line's padding
    np.testing.assert_array_equal(
        to_gray(without_last_padding, width, height, "Mono8", line_padding=padding), expected
    )


def test_unsupported_or_short_buffers_are_rejected():
    with pytest.raises(PixelFormatError, match="Mono16"):
        to_gray(np.zeros(8, np.uint8), 2, 2, "Mono16")
    with pytest.raises(PixelFormatError, match="too small"):
        to_gray(np.zeros(10, np.uint8), 4, 3, "Mono8")
    assert "BayerRG8" in SUPPORTED_PIXEL_FORMATS


def test_backoff_doubles_up_to_the_maximum_and_resets():
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_settings_follow_the_config_in_a_camera_friendly_order(viky_camera_config):
    config = viky_camera_config(offset_x=16, trigger_mode="on", trigger_source="Line1")
    nodes = [(s.node, s.value, s.required) for s in settings_from_config(config)]
    names = [name for name, _, _ in nodes]
    offsets = [index for index, name in enumerate(names) if name == "OffsetX"]
    assert nodes[offsets[0]][1:] == (0, False) and nodes[offsets[1]][1:] == (16, True)
    assert offsets[0] < names.index("Width") < offsets[1]
    assert ("TriggerMode", "On", True) in nodes and ("TriggerSource", "Line1", True) in nodes
    assert ("TriggerSelector", "FrameStart", False) in nodes
    assert "ExposureTime" not in names and "Gain" not in names  # not configured, not touched


# -- the real producer ------------------------------------------------------------------------


class RecordingSource(GenICamSource):
    """Keeps a copy of the last raw buffer so the test can convert it independently."""

    raw: tuple[np.ndarray, int, int, str] | None = None

    def _convert(self, component):
        self.raw = (
            component.data.copy(),
            int(component.width),
            int(component.height),
            component.data_format,
        )
        return super()._convert(component)


@pytest.mark.parametrize(
    "pixel_format, serial, code, channels",
    [("Mono8", "1", None, 1), ("RGBa8", "0", cv2.COLOR_RGBA2GRAY, 4)],
)
def test_frames_arrive_converted_at_the_configured_size(
    viky_camera_config, pixel_format, serial, code, channels
):
    config = viky_camera_config(serial=serial, pixel_format=pixel_format, width=328, height=200)
    with RecordingSource(config) as source:
        assert source.state == CameraState.OK
        before = time.time()
        frames = [source.read(2.0) for _ in range(5)]
        after = time.time()

    assert all(frame is not None for frame in frames)
    for frame in frames:
        assert frame.image.shape == (200, 328) and frame.image.dtype == np.uint8
        assert before <= frame.timestamp <= after
        assert frame.meta["pixel_format"] == pixel_format
    ids = [frame.meta["device_frame_id"] for frame in frames]
    assert ids == sorted(ids) and len(set(f.frame_id for f in frames)) == 5

    raw, width, height, raw_format = source.raw
    assert (width, height, raw_format) == (328, 200, pixel_format)
    pixels = raw.reshape(height, width, channels)
    expected = pixels[..., 0] if code is None else cv2.cvtColor(pixels, code)
    np.testing.assert_array_equal(frames[-1].image, expected)
    # the red ball (camera "0") is 0.299 * 255 = 76 in gray; white stays 255
    assert set(np.unique(frames[-1].image)) <= ({0, 255} if code is None else {76, 255})
    assert source.counters["frames"] == 5 and source.state == CameraState.STOPPED


@pytest.mark.parametrize(
    "selector", [{"device_id": "VikyTL_DEV_blue"}, {"index": 2}, {"serial": "2"}], ids=str
)
def test_the_device_is_chosen_by_serial_id_or_index(viky_camera_config, selector):
    config = viky_camera_config(**{"serial": None, **selector})
    with GenICamSource(config) as source:
        assert source.state == CameraState.OK
        assert source.device_name.endswith(" Viky 2")


def test_missing_nodes_warn_and_out_of_range_values_are_config_errors(viky_camera_config, caplog):
    caplog.set_level(logging.WARNING, logger="edge.sources")
    with GenICamSource(viky_camera_config(exposure_time=500.0, gain=2.0)) as source:
        assert source.state == CameraState.OK and source.read(2.0) is not None
    warnings = " ".join(r.getMessage() for r in caplog.records)
    assert "ExposureTime does not exist" in warnings and "camera.exposure_time=500.0" in warnings
    assert "Gain does not exist" in warnings
    assert "TriggerMode" not in warnings  # trigger_mode defaults to off: nothing to warn about

    source = GenICamSource(viky_camera_config(width=5000))
    with pytest.raises(ConfigError, match=r"camera.width=5000 for camera node Width .*100\.\.800"):
        source.open()
    assert source.state == CameraState.STOPPED  # a rejected setting is not retried


def test_missing_producer_file_is_a_config_error(viky_camera_config, tmp_path):
    config = viky_camera_config(cti=[str(tmp_path / "vendor.cti")])
    with pytest.raises(ConfigError, match="vendor.cti does not exist"):
        GenICamSource(config).open()


def test_producers_come_from_the_gentl_path_when_none_is_configured(viky_cti, monkeypatch):
    monkeypatch.setenv("GENICAM_GENTL64_PATH", f"/nonexistent:{viky_cti.parent}")
    assert find_producers([]) == [viky_cti]
    cameras = list_cameras(find_producers([]))
    assert [(c["index"], c["serial_number"], c["id_"]) for c in cameras] == [
        ("0", "0", "VikyTL_DEV_red"),
        ("1", "1", "VikyTL_DEV_green"),
        ("2", "2", "VikyTL_DEV_blue"),
    ]
    monkeypatch.setenv("GENICAM_GENTL64_PATH", "/nonexistent")
    with pytest.raises(ConfigError, match=r"no \.cti file in \$GENICAM_GENTL64_PATH"):
        find_producers([])


def test_no_frame_within_the_timeout_returns_none(viky_camera_config, monkeypatch):
    probes = []
    original = GenICamSource._probe_if_quiet
    monkeypatch.setattr(GenICamSource, "_probe_if_quiet", lambda s: (probes.append(1), original(s)))
    # fetch_timeout 0.1: the silent camera is probed (a real uncached node read) and still answers
    with GenICamSource(viky_camera_config(frame_rate=1.0, fetch_timeout=0.1)) as source:
        assert source.read(3.0) is not None  # the next frame is ~1 s away
        started = time.monotonic()
        assert source.read(0.3) is None
        elapsed = time.monotonic() - started
        assert source.state == CameraState.OK
        assert source.counters["timeouts"] == 1 and source.counters["errors"] == 0
    assert probes and 0.25 <= elapsed <= 0.9


def test_unknown_serial_stays_lost_and_retries_with_backoff(viky_camera_config, caplog):
    caplog.set_level(logging.WARNING, logger="edge.sources.genicam")
    config = viky_camera_config(serial="99", reconnect={"initial": 0.05, "max": 0.2})
    with GenICamSource(config) as source:
        assert source.state == CameraState.LOST
        started = time.monotonic()
        assert source.read(1.2) is None
        elapsed = time.monotonic() - started
        counters = source.counters
    lost = [r for r in caplog.records if r.getMessage().startswith("camera lost: ")]
    assert "camera lost: no camera with serial '99'; visible: #0 serial=0" in lost[0].getMessage()
    delays = [record.args[-1] for record in lost]
    # attempts ~0.05, 0.15, 0.35, 0.55, 0.75, 0.95, 1.15 s after open: doubling, capped at 0.2
    assert delays[:5] == [0.05, 0.1, 0.2, 0.2, 0.2]
    for before, after, delay in zip(lost, lost[1:], delays, strict=False):
        assert after.created - before.created >= delay - 0.01  # each wait really happened
    assert counters["errors"] == len(lost) == counters["reconnects"] + 1  # + the failed open()
    assert 1.15 <= elapsed <= 2.0


def test_lost_device_goes_lost_then_reconnects(viky_camera_config):
    config = viky_camera_config(reconnect={"initial": 0.3, "max": 1.0})
    with GenICamSource(config) as source:
        first = source.read(2.0)
        source._acquirer.destroy()  # the producer's handles vanish under the source

        assert source.read(0.1) is None
        assert source.state == CameraState.LOST

        again = source.read(3.0)
        assert again is not None and source.state == CameraState.OK
        counters = source.counters
    assert first is not None and again.frame_id != first.frame_id
    assert again.meta["session"] != first.meta["session"]
    assert counters["reconnects"] == 1 and counters["errors"] == 1


@pytest.mark.parametrize("serial", ["1", "99"], ids=["waiting-for-frame", "waiting-to-retry"])
def test_close_from_another_thread_stops_a_blocked_read(viky_camera_config, serial):
    config = viky_camera_config(serial=serial, frame_rate=1.0, reconnect={"initial": 5, "max": 10})
    source = GenICamSource(config)
    source.open()
    if serial == "1":
        assert source.read(3.0) is not None  # the next frame is ~1 s away
    closer = threading.Timer(0.3, source.close)
    started = time.monotonic()
    closer.start()
    result = source.read(10.0)
    returned_after = time.monotonic() - started
    closer.join()

    assert result is None
    assert returned_after < 0.3 + 1.0  # promptly, not after the 10 s read or the 5 s backoff
    assert source.state == CameraState.STOPPED
    assert source.read(1.0) is None  # a closed source returns at once
