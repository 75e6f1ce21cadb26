"""edge.toml: the minimal file, the shipped example, one-line errors naming the key."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

import edge
from edge import config as config_module
from edge.config import (
    EdgeConfig,
    GenICamCameraConfig,
    ReplayCameraConfig,
    load_config,
    parse_config,
)
from edge.errors import ConfigError

MINIMAL = """\
[site]
line = "L1"
camera = "cam1"
[camera]
type = "replay"            # or "genicam"
path = "/srv/frames"       # replay: folder of images
rate = 0                   # frames per second, 0 = as fast as possible
[model]
path = "/opt/models/model.onnx"   # an .onnx, or an engine with its .json manifest
backend = "onnxruntime"           # or "tensorrt"
[mqtt]
host = "127.0.0.1"
port = 1883
topic_prefix = "steel-inspect"
[outbox]
path = "/var/lib/steel-inspect/outbox.sqlite"
"""


def test_minimal_file_from_the_issue_loads_with_defaults(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text(MINIMAL)
    config = load_config(path)
    assert config.site.line == "L1" and config.site.camera == "cam1"
    assert isinstance(config.camera, ReplayCameraConfig)
    assert config.camera.path == Path("/srv/frames") and config.camera.rate == 0
    assert config.model.path == Path("/opt/models/model.onnx")
    assert config.mqtt.port == 1883 and config.mqtt.qos == 1 and not config.mqtt.use_tls
    assert config.outbox.path == Path("/var/lib/steel-inspect/outbox.sqlite")
    assert config.tiling.stride_for(256) == 256 and config.logging.level == "INFO"


def test_shipped_example_loads_and_names_every_section():
    example = Path(edge.__file__).parent / "example.toml"
    config = load_config(example)
    assert isinstance(config.camera, GenICamCameraConfig) and config.camera.serial
    raw = tomllib.loads(example.read_text())
    assert set(raw) == set(EdgeConfig.model_fields)


def _raw() -> dict:
    return tomllib.loads(MINIMAL)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["mqtt"].update(port=70000),
         "edge.toml: mqtt.port: Input should be less than or equal to 65535 (got 70000)"),
        (lambda r: r["mqtt"].update(hostname="x"), "edge.toml: mqtt.hostname: unknown key"),
        (lambda r: r.update(extra={"a": 1}), "edge.toml: extra: unknown key"),
        (lambda r: r.pop("outbox"), "edge.toml: outbox: required key is missing"),
        (lambda r: r["camera"].update(rate=-1),
         "edge.toml: camera.rate: Input should be greater than or equal to 0 (got -1)"),
        (lambda r: r["camera"].pop("type"),
         "edge.toml: camera.type: required key is missing (genicam or replay)"),
        (lambda r: r["camera"].update(type="usb"),
         "edge.toml: camera.type: must be genicam or replay (got 'usb')"),
        (lambda r: r.update(camera={"type": "genicam", "serial": "1", "index": 0}),
         "edge.toml: camera: choose the device by one of serial, device_id, index"),
        (lambda r: r["model"].update(backend="openvino"), "edge.toml: model.backend: "),
        (lambda r: r["site"].update(line="L1/a"), "edge.toml: site.line: must be a non-empty"),
        (lambda r: r["mqtt"].update(password_file="/p"), "edge.toml: mqtt: a password needs"),
        (lambda r: r["mqtt"].update(cert_file="/c"), "edge.toml: mqtt: set both cert_file"),
        (lambda r: r["mqtt"].update(qos=0), "edge.toml: mqtt.qos: "),
        (lambda r: r.update(tiling={"stride": 128, "overlap": 8}),
         "edge.toml: tiling: set stride or overlap, not both"),
        (lambda r: r.update(events={"thresholds": {"scratches": 1.5}}),
         "edge.toml: events.thresholds.scratches: Input should be less than 1 (got 1.5)"),
        (lambda r: r.update(logging={"level": "loud"}), "edge.toml: logging.level: "),
    ],
)
def test_errors_are_one_line_and_name_the_key(change, message):
    raw = copy.deepcopy(_raw())
    change(raw)
    with pytest.raises(ConfigError) as info:
        parse_config(raw, source="edge.toml")
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="missing.toml: configuration file not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[site\nline = 1\n")
    with pytest.raises(ConfigError, match=r"bad.toml: invalid TOML: .*line 1"):
        load_config(bad)


def test_relative_paths_are_taken_from_the_config_folder(tmp_path):
    text = MINIMAL.replace('"/srv/frames"', '"frames"').replace(
        '"/var/lib/steel-inspect/outbox.sqlite"', '"state/outbox.sqlite"'
    )
    (tmp_path / "edge.toml").write_text(text)
    config = load_config(tmp_path / "edge.toml")
    assert config.camera.path == tmp_path / "frames"
    assert config.outbox.path == tmp_path / "state" / "outbox.sqlite"


def test_password_from_file_or_systemd_credential(tmp_path, monkeypatch):
    (tmp_path / "pw").write_text("s3cret\nignored\n")
    raw = _raw()
    raw["mqtt"].update(username="u", password_file=str(tmp_path / "pw"))
    assert parse_config(raw).mqtt.read_password() == "s3cret"

    raw = _raw()
    raw["mqtt"].update(username="u", password_credential="mqtt-pw")
    mqtt = parse_config(raw).mqtt
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match="mqtt.password_credential: .CREDENTIALS_DIRECTORY"):
        mqtt.read_password()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    (tmp_path / "mqtt-pw").write_text("from-credential")
    assert mqtt.read_password() == "from-credential"
    (tmp_path / "mqtt-pw").unlink()
    with pytest.raises(ConfigError, match="mqtt.password_credential: cannot read .*mqtt-pw"):
        mqtt.read_password()


def _models(model: type[BaseModel], seen: set) -> None:
    if model in seen:
        return
    seen.add(model)
    for field in model.model_fields.values():
        for arg in _types(field.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                _models(arg, seen)


def _types(annotation):
    yield annotation
    for arg in getattr(annotation, "__args__", ()):
        yield from _types(arg)


def test_every_field_has_a_description_and_forbids_unknown_keys():
    models: set = set()
    _models(EdgeConfig, models)
    assert {GenICamCameraConfig, ReplayCameraConfig, config_module.MqttConfig} <= models
    for model in models:
        assert model.model_config.get("extra") == "forbid", model.__name__
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_docs_reference_is_the_generated_one():
    docs = (Path(__file__).parents[1] / "docs" / "edge.md").read_text()
    begin = docs.index("<!-- BEGIN generated by `python -m edge.config` -->\n")
    end = docs.index("<!-- END generated -->")
    block = docs[begin:end].split("\n", 1)[1]
    assert block.strip() == config_module.reference_markdown().strip(), (
        "docs/edge.md is stale: regenerate with `python -m edge.config`"
    )
