"""Reliability: bad input anywhere gives a clear one-line error or is skipped and counted.

- replay frames that are truncated, corrupt, empty or of the wrong size, inside the daemon;
- configuration files fuzzed with hypothesis (types, ranges, unknown and missing keys, broken
  TOML, raw bytes) through load_config and `edge check --config-only`, and a few end to end;
- ONNX models whose input does not fit the model card;
- `train fit` on a folder with a malformed train.csv.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from edge.cli import main as edge_main
from edge.config import MAX_BATCH_LIMIT, EdgeConfig, load_config, parse_config
from edge.delivery.mqtt import Topics
from edge.errors import ConfigError, ModelError
from edge.inference.manifest import file_sha256
from edge.inference.model import load_model
from edge.inference.modelcard import ModelCard
from edge.sources.replay import UnreadableImage, read_gray
from tests.fixtures.broker import Subscriber
from tests.fixtures.edge_daemon import (
    daemon_sections,
    frame_with_tiles,
    toml_value,
    validate_messages,
    write_config,
    write_frames,
    write_gate_manifest,
    write_mean_model,
)
from tests.fixtures.reliability import running_daemon, wait_until

# -- replay frames ------------------------------------------------------------------------------


def test_daemon_skips_counts_and_logs_bad_frames(tmp_path, mqtt_broker, mean_model, caplog):
    good = {f"{i:02d}-good.png": frame_with_tiles([200, 0]) for i in range(0, 12, 2)}
    images = write_frames(tmp_path / "frames", good)
    ok, jpeg = cv2.imencode(".jpg", frame_with_tiles([200, 0]))
    assert ok
    jpeg = jpeg.tobytes()
    unreadable = {
        "01-truncated.jpg": jpeg[: len(jpeg) // 2],
        "03-corrupt.jpg": jpeg[:200] + bytes(range(256)) * 4 + jpeg[-2:],
        "05-empty.png": b"",
        "07-text.png": b"this is not an image\n",
    }
    for name, data in unreadable.items():
        (images / name).write_bytes(data)
    write_frames(images, {"09-small.png": frame_with_tiles([200]),
                          "11-tall.png": frame_with_tiles([200, 0], height=300)})
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, "steel-inspect/#")
    config = parse_config(daemon_sections(tmp_path, mqtt_broker, mean_model, images))
    try:
        with running_daemon(config, lossless=True) as daemon:
            assert wait_until(lambda: daemon.pipeline.finished and daemon.publisher.idle)
            assert wait_until(lambda: len(subscriber.messages("/defects")) == len(good))
            assert wait_until(lambda: subscriber.payloads("/stats")[-1:] and
                              subscriber.payloads("/stats")[-1]["frames_processed"] == len(good))
        stats = subscriber.payloads("/stats")[-1]
        validate_messages(subscriber.messages())
    finally:
        subscriber.close()
    assert sorted(e["frame_id"] for e in subscriber.payloads("/defects")) == sorted(good)
    assert stats["camera_counters"]["skipped_unreadable"] == len(unreadable)
    assert stats["camera_counters"]["skipped_size"] == 2
    assert stats["frames_failed"] == 0
    for name in [*unreadable, "09-small.png", "11-tall.png"]:
        assert f"replay: skipping {images / name}: " in caplog.text
    assert "09-small.png: image is 256x256, expected 512x256" in caplog.text


ENCODED = {suffix: cv2.imencode(suffix, frame_with_tiles([200, 40]))[1].tobytes()
           for suffix in (".jpg", ".png", ".bmp", ".tif")}


@settings(max_examples=200, deadline=None)
@given(
    suffix=st.sampled_from(sorted(ENCODED)),
    cut=st.integers(min_value=0, max_value=4096),
    noise=st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), max_size=8),
)
def test_damaged_image_files_decode_or_are_unreadable(fuzz_dir, suffix, cut, noise):
    data = bytearray(ENCODED[suffix][: max(cut, 0) or None])
    for position, value in noise:
        if position < len(data):
            data[position] = value
    path = fuzz_dir / f"frame{suffix}"
    path.write_bytes(bytes(data))
    try:
        image = read_gray(path)
    except UnreadableImage:
        return
    assert image.dtype == np.uint8 and image.ndim == 2


# -- configuration files ------------------------------------------------------------------------

BASE = daemon_sections(Path("/srv"), SimpleNamespace(host="127.0.0.1", port=1883),
                       Path("/opt/model.onnx"), Path("/srv/frames"))
SECTION_KEYS = [(section, key) for section, keys in BASE.items() for key in keys]
KEY = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True)
# values that pass naive checks and then fail: MQTT's reserved $ topics, empty levels, control
# characters (brokers hang up), strings past MQTT's 65535 bytes, timers and sizes past the OS
EDGE_CASES = st.sampled_from([
    "$SYS", "/$share/a", "/plant/steel/", "a//b", "L\x071", "cam\x85", "x" * 65536, "é" * 32768,
    1e300, 10**9, 10**12, 65536, 0, 1, 255, 256, 257, 4096,
    {"x": 1500, "width": 256, "height": 256}, {"width": 100, "height": 100},
])
SCALAR = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=16),
    st.text(alphabet=st.characters(max_codepoint=0x9F), max_size=6),
    EDGE_CASES,
)
# keys of the optional sections, which BASE leaves out
OPTIONAL_KEYS = [("tiling", k) for k in ("stride", "overlap", "roi")] + [
    ("pipeline", k) for k in ("frame_queue", "event_queue")] + [
    ("mqtt", k) for k in ("client_id", "username")] + [("camera", k) for k in ("width", "height")]
VALUE = st.one_of(
    SCALAR,
    st.lists(SCALAR, max_size=3),
    st.dictionaries(KEY, SCALAR, max_size=3),
)
MUTATION = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(SECTION_KEYS), VALUE),
    st.tuples(st.just("add"), st.tuples(st.sampled_from(list(BASE)), KEY), VALUE),
    st.tuples(st.just("add"), st.sampled_from(OPTIONAL_KEYS), VALUE),
    st.tuples(st.just("delete"), st.sampled_from(SECTION_KEYS), st.none()),
    st.tuples(st.just("section"), st.tuples(st.sampled_from([*BASE, "extra"]), st.none()), VALUE),
)


def mutated_toml(mutations) -> tuple[str, set[str]]:
    """TOML text of BASE after the mutations, and the top-level names they touched."""
    sections = {name: dict(keys) for name, keys in BASE.items()}
    touched = set()
    for kind, (section, key), value in mutations:
        touched.add(section)
        if kind == "section":
            sections[section] = value
        elif kind == "add" and section not in sections:
            sections[section] = {key: value}
        elif not isinstance(sections.get(section), dict):
            continue
        elif kind == "delete":
            sections[section].pop(key, None)
        else:
            sections[section][key] = value
    scalars = [f"{name} = {toml_value(v)}" for name, v in sections.items()
               if not isinstance(v, dict)]
    tables = [f"[{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items())
              for name, keys in sections.items() if isinstance(keys, dict)]
    return "\n".join(scalars) + "\n" + "\n".join(tables), touched


def assert_one_line_error_or_valid(path: Path, touched: set[str] | None) -> None:
    try:
        config = load_config(path)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith(f"{path}: "), message
        where = message[len(f"{path}: "):]
        if touched is not None and not where.startswith("invalid TOML"):
            assert where.startswith(tuple(touched)), message  # names the key at fault
        valid = False
        event("invalid TOML" if where.startswith("invalid TOML") else "invalid")
    else:
        assert isinstance(config, EdgeConfig)
        assert_usable(config)
        valid = True
        event("valid")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = edge_main(["check", "--config", str(path), "--config-only"])
    assert "Traceback" not in err.getvalue() + out.getvalue()
    lines = out.getvalue().splitlines()
    assert code == (0 if valid else 1) and len(lines) == 1, out.getvalue()
    assert lines[0].startswith("config  OK" if valid else "config  FAIL")


def assert_usable(config: EdgeConfig) -> None:
    """What a valid config promises: MQTT, the OS timers and memory can take every value."""
    mqtt = config.mqtt
    topics = Topics.of(mqtt.topic_prefix, config.site)
    for text in (topics.defects, topics.status, topics.stats, topics.base + "/check",
                 mqtt.client_id or "", mqtt.username or ""):
        assert len(text.encode()) <= 65535, len(text.encode())
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text), repr(text[:80])
    assert not topics.base.startswith(("$", "/")) and "//" not in topics.base, topics.base
    for seconds in (mqtt.flush_timeout, mqtt.stats_interval, mqtt.reconnect.max):
        assert seconds <= threading.TIMEOUT_MAX and seconds <= 86400, seconds
    tile_bytes = 256 * 256
    max_batch = config.model.max_batch or MAX_BATCH_LIMIT  # unset: a frame's tiles, capped
    assert max_batch * tile_bytes <= 2**30  # one batch of tiles, at most 1 GiB
    assert config.pipeline.frame_queue * 1600 * 256 * 3 <= 2**30  # the queued colour frames
    tiling, camera = config.tiling, config.camera
    if tiling.roi is not None and camera.width is not None:
        assert tiling.roi.x + tiling.roi.width <= camera.width


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def fuzz_file(fuzz_dir) -> Path:
    return fuzz_dir / "edge.toml"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
@example(mutations=[("set", ("camera", "path"), "~nosuchuser/frames")])
@example(mutations=[("set", ("mqtt", "flush_timeout"), float("inf"))])
@example(mutations=[("set", ("mqtt", "reconnect"), {"initial": float("nan")})])
@example(mutations=[("set", ("camera", "rate"), float("inf"))])
@example(mutations=[("add", ("mqtt", "password"), "hunter2")])
@example(mutations=[("set", ("mqtt", "topic_prefix"), "$SYS")])
@example(mutations=[("set", ("mqtt", "topic_prefix"), "/plant/steel/")])
@example(mutations=[("set", ("site", "line"), "L\x071")])
@example(mutations=[("add", ("mqtt", "client_id"), "x" * 65536)])
@example(mutations=[("set", ("mqtt", "flush_timeout"), 1e300)])
@example(mutations=[("set", ("model", "max_batch"), 10**9)])
@example(mutations=[("add", ("pipeline", "frame_queue"), 10**9)])
@example(mutations=[("add", ("camera", "width"), 1600),
                    ("add", ("tiling", "roi"), {"x": 1500, "width": 256, "height": 256})])
def test_fuzzed_config_is_valid_or_a_one_line_error(fuzz_file, mutations):
    text, touched = mutated_toml(mutations)
    fuzz_file.write_text(text)
    assert_one_line_error_or_valid(fuzz_file, touched)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_garbage_config_file_is_a_one_line_error(fuzz_file, data):
    fuzz_file.write_bytes(data)
    assert_one_line_error_or_valid(fuzz_file, None)


@pytest.mark.parametrize(
    ("command", "expected_code"), [("run", 2), ("check", 1)], ids=["run", "check"]
)
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[site\nline = 1", "invalid TOML"),
        ("[site]\nline = 'L1'\ncamera = 'c1'\nspeed = 3\n", "site.speed: unknown key"),
        (b"\xff\xfe[site]", "invalid TOML"),
        (mutated_toml([("set", ("camera", "path"), "~nosuchuser/x")])[0],
         "camera.path: cannot expand ~nosuchuser: no such user"),
    ],
    ids=["broken-toml", "unknown-key", "not-utf8", "unknown-home"],
)
def test_bad_config_end_to_end_is_one_line_without_traceback(
    tmp_path, command, expected_code, text, message
):
    path = tmp_path / "edge.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", command, "--config", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    output = done.stdout + done.stderr
    assert done.returncode == expected_code, output
    assert "Traceback" not in output
    if command == "run":
        assert done.stdout == "" and len(done.stderr.splitlines()) == 1, output
        assert done.stderr.startswith(f"edge run: error: {path}: ") and message in done.stderr
    else:
        rows = done.stdout.splitlines()
        assert rows[0].split()[:2] == ["config", "FAIL"] and message in rows[0], output
        assert all(row.split()[1] == "SKIP" for row in rows[1:]) and len(rows) == 7


# -- models -------------------------------------------------------------------------------------


def write_model_with_input(folder: Path, dims: list, elem_type=TensorProto.UINT8) -> Path:
    """A mean model whose input is declared as `dims` (with the card of the real ones)."""
    path = write_mean_model(folder)
    model = onnx.load(path)
    model.graph.input[0].CopyFrom(helper.make_tensor_value_info("image", elem_type, dims))
    onnx.save(model, path)
    write_gate_manifest(path, ModelCard.load(folder / "modelcard.json"), passed=True)
    return path


@pytest.mark.parametrize(
    ("dims", "elem_type", "message"),
    [
        (["N", 1, 256, 256], TensorProto.UINT8, r"input image is \[N, 1, 256, 256\] \(NHWC\)"),
        (["N", 224, 224, 1], TensorProto.UINT8, r"input image is \[N, 224, 224, 1\] \(NHWC\)"),
        (["N", 256, 256, 3], TensorProto.UINT8, r"input image is \[N, 256, 256, 3\] \(NHWC\)"),
        (["N", 256, 256, 1], TensorProto.FLOAT, "expected uint8"),
        (["N", 256, 256], TensorProto.UINT8, "ONNX Runtime cannot load the model"),
    ],
    ids=["nchw", "224-tiles", "3-channels", "float-input", "rank-3"],
)
def test_model_with_a_wrong_input_is_a_clear_error_at_load(
    tmp_path, mqtt_broker, dims, elem_type, message, capsys
):
    path = write_model_with_input(tmp_path / "model", dims, elem_type)
    with pytest.raises(ModelError, match=message) as caught:
        load_model(path, "onnxruntime", max_batch=4, threads=1)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)

    images = write_frames(tmp_path / "frames", {"a.png": frame_with_tiles([1, 2])})
    config = write_config(tmp_path / "edge.toml",
                          daemon_sections(tmp_path, mqtt_broker, path, images))
    assert edge_main(["check", "--config", str(config)]) == 1
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert rows["model"].split()[1] == "FAIL" and str(caught.value) in rows["model"]
    assert all(rows[name].split()[1] == "OK" for name in ("config", "camera", "broker"))


# -- training data ------------------------------------------------------------------------------


def test_train_fit_on_a_malformed_csv_is_one_line(tmp_path):
    images = tmp_path / "data" / "train_images"
    images.mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(images / name), np.full((256, 512), 128, np.uint8))
    (tmp_path / "data" / "train.csv").write_text(
        "ImageId,ClassId,EncodedPixels\na.jpg,1,1 2 3\nb.jpg,2,5 x\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "train.cli", "fit", "--data", str(tmp_path / "data"),
         "--out", str(tmp_path / "run"), "--epochs", "1", "--threads", "1"],
        capture_output=True, text=True, timeout=300,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("train fit: ")]
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert len(errors) == 1 and "train.csv" in errors[0] and "row 2" in errors[0], errors


# -- engines and manifests ----------------------------------------------------------------------


def engine_with_manifest(folder: Path, built_for: str, **changes) -> Path:
    """A mean-model "engine" with a build-engine style manifest (its card embedded)."""
    path = write_mean_model(folder, gate=None)
    engine = path.with_name("model-fp32.onnx")
    path.rename(engine)
    manifest = {
        "manifest_version": 1, "backend": built_for, "backend_version": "1.0",
        "engine_sha256": file_sha256(engine),
        "card": json.loads((folder / "modelcard.json").read_text()),
        "gpu": {"name": "GeForce GTX 1060 6GB", "compute_capability": "6.1"},
        "gate": {"passed": True},
        **changes,
    }
    engine.with_name(engine.name + ".json").write_text(json.dumps(manifest))
    return engine


@pytest.mark.parametrize(
    ("backend", "changes", "message"),
    [
        ("onnxruntime", {"engine_sha256": "0" * 64},
         "file does not match its manifest model-fp32.onnx.json"),
        ("tensorrt", {"engine_sha256": "0" * 64},
         "file does not match its manifest model-fp32.onnx.json"),
        ("onnxruntime", {"manifest_version": 7}, "manifest_version 7 is not 1"),
        ("onnxruntime", {"backend": "tensorrt"},
         "engine was built for backend tensorrt, but model.backend is onnxruntime"),
        ("onnxruntime", {"card": {"classes": []}}, "card: name: Field required"),
    ],
    ids=["changed-engine", "changed-tensorrt-engine", "manifest-version", "other-backend",
         "broken-card"],
)
def test_engine_whose_manifest_does_not_match_is_a_clear_error(
    tmp_path, mqtt_broker, backend, changes, message, capsys
):
    engine = engine_with_manifest(tmp_path / "engine", backend, **changes)
    with pytest.raises(ModelError, match=message) as caught:
        load_model(engine, backend, max_batch=4, threads=1)
    assert "\n" not in str(caught.value)
    images = write_frames(tmp_path / "frames", {"a.png": frame_with_tiles([1, 2])})
    sections = daemon_sections(tmp_path, mqtt_broker, engine, images)
    sections["model"]["backend"] = backend
    config = write_config(tmp_path / "edge.toml", sections)
    assert edge_main(["check", "--config", str(config)]) == 1
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert rows["model"].split()[1] == "FAIL" and message in rows["model"]
    assert edge_main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edge run: error: ") and message in err and "Traceback" not in err
    assert len(err.splitlines()) == 1, err


def test_engine_with_a_matching_manifest_loads_with_the_manifest_card(tmp_path):
    engine = engine_with_manifest(tmp_path / "engine", "onnxruntime")
    loaded = load_model(engine, "onnxruntime", max_batch=4, threads=1)
    assert loaded.manifest["backend"] == "onnxruntime" and loaded.card.name == "mean-model"
    loaded.close()
