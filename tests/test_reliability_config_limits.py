"""Config values that used to pass validation and then fail at run time are refused at load."""

from __future__ import annotations

import copy
import tomllib

import numpy as np
import pytest

from edge.config import MQTT_STRING_MAX_BYTES, TilingConfig, parse_config
from edge.defects.events import DefectRule
from edge.delivery.mqtt import Topics
from edge.errors import ConfigError
from edge.inference.model import load_model
from edge.inference.pipeline import FrameProcessor
from tests.test_edge_config import MINIMAL

LONG = "x" * (MQTT_STRING_MAX_BYTES + 1)


def _parse(change):
    raw = copy.deepcopy(tomllib.loads(MINIMAL))
    change(raw)
    return parse_config(raw, source="edge.toml")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["mqtt"].update(topic_prefix="$SYS/steel"),
         "mqtt.topic_prefix: must not start with '$'"),
        (lambda r: r["mqtt"].update(topic_prefix="/$share/x/"),
         "mqtt.topic_prefix: must not start with '$'"),
        (lambda r: r["mqtt"].update(topic_prefix="plant//steel"),
         "mqtt.topic_prefix: must not contain an empty topic level"),
        (lambda r: r["site"].update(line="L\x071"),
         "site.line: must not contain control characters (U+0007)"),
        (lambda r: r["site"].update(camera="cam\x85"),
         "site.camera: must not contain control characters (U+0085)"),
        (lambda r: r["mqtt"].update(client_id="id\x1b[0m"),
         "mqtt.client_id: must not contain control characters (U+001B)"),
        (lambda r: r["mqtt"].update(client_id=LONG),
         "mqtt.client_id: is 65536 bytes in UTF-8; MQTT strings hold at most 65535"),
        (lambda r: r["mqtt"].update(username="é" * 32768),
         "mqtt.username: is 65536 bytes in UTF-8"),
        (lambda r: r["site"].update(line="l" * 65520),
         "site.line: makes topics (PREFIX/LINE/CAMERA/defects) of 65547 bytes"),
        (lambda r: r["mqtt"].update(flush_timeout=1e300),
         "mqtt.flush_timeout: Input should be less than or equal to 3600"),
        (lambda r: r["mqtt"].update(stats_interval=1e20), "mqtt.stats_interval: "),
        (lambda r: r["mqtt"].update(reconnect={"initial": 1, "max": 1e12}), "mqtt.reconnect.max"),
        (lambda r: r["model"].update(max_batch=10**9),
         "model.max_batch: Input should be less than or equal to 1024"),
        (lambda r: r.update(pipeline={"frame_queue": 10**9}),
         "pipeline.frame_queue: Input should be less than or equal to 256"),
        (lambda r: r.update(pipeline={"event_queue": 10**12}), "pipeline.event_queue: "),
        (lambda r: (r["camera"].update(width=1600, height=256),
                    r.update(tiling={"roi": {"x": 1400, "width": 256, "height": 256}})),
         "tiling.roi: x 1400 + width 256 is beyond camera.width 1600"),
        (lambda r: (r["camera"].update(height=256),
                    r.update(tiling={"roi": {"y": 1, "width": 256, "height": 256}})),
         "tiling.roi: y 1 + height 256 is beyond camera.height 256"),
    ],
)
def test_values_that_cannot_work_are_one_line_errors_at_load(change, message):
    with pytest.raises(ConfigError) as info:
        _parse(change)
    text = str(info.value)
    assert text.startswith(f"edge.toml: {message}"), text
    assert "\n" not in text and len(text) < 300  # a 65536-byte value is not echoed in full


def test_topic_prefix_is_used_as_normalised():
    config = _parse(lambda r: r["mqtt"].update(topic_prefix="/plant/steel/"))
    assert config.mqtt.topic_prefix == "plant/steel"
    assert Topics.of(config.mqtt.topic_prefix, config.site).defects == "plant/steel/L1/cam1/defects"


@pytest.mark.parametrize(
    ("tiling", "message"),
    [
        ({"stride": 300}, "tiling.stride: 300 is more than the model's 256 px tile"),
        ({"overlap": 256}, "tiling.overlap: 256 must be less than the model's 256 px tile"),
        ({"roi": {"width": 1600, "height": 200}},
         "tiling.roi: 1600x200 is smaller than the model's 256x256 tile"),
    ],
)
def test_tiling_that_cannot_cut_the_models_tiles_fails_at_start(mean_model, tiling, message):
    config = _parse(lambda r: r.update(tiling=tiling))
    model = load_model(mean_model, "onnxruntime", max_batch=4, threads=1)
    try:
        with pytest.raises(ConfigError) as info:
            FrameProcessor(model, DefectRule(model.card, config.events), config.tiling)
        assert str(info.value).startswith(message) and "256x256 tiles" in str(info.value)
        good = FrameProcessor(model, DefectRule(model.card, config.events), TilingConfig())
        assert good.process(np.zeros((256, 512), np.uint8))[0] == []
    finally:
        model.close()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"caf\xe9-secret\n", "is not UTF-8 text (invalid byte at offset 3)"),
        (("p" * 65536).encode(), "holds a password of 65536 bytes; MQTT allows at most 65535"),
    ],
)
def test_password_file_that_mqtt_cannot_send_is_one_line_without_its_bytes(
    tmp_path, content, message
):
    path = tmp_path / "password"
    path.write_bytes(content)
    path.chmod(0o600)
    config = _parse(lambda r: r["mqtt"].update(username="line1", password_file=str(path)))
    with pytest.raises(ConfigError) as info:
        config.mqtt.read_password()
    text = str(info.value)
    assert text.startswith(f"mqtt.password_file: {path} ") and message in text
    assert "secret" not in text and "\\xe9" not in text and "ppp" not in text
