"""`edge check --config FILE`: is this line PC ready to run the daemon?

Checks, in order: the configuration, the model (loaded, warmed up, one batch inferred), the
camera (opened, one frame grabbed), inference (that frame through the daemon's own tiling and
runtime with outputs checked: a model returning NaN or values outside [0, 1] fails here), the
outbox folder and the broker (one connection, without will or birth, so a running daemon is not
disturbed). Prints a table of OK/FAIL with the reason; exits 0 only if all pass. The password is
never printed, only where it comes from.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from edge.errors import SteelInspectError

_CAMERA_TIMEOUT_S = 10.0
_BROKER_TIMEOUT_S = 5.0


def add_arguments(parser) -> None:
    from edge.commands.run import add_arguments as add_config  # noqa: PLC0415

    add_config(parser)
    parser.add_argument(
        "--config-only", action="store_true",
        help="only validate the configuration file (fast: no model, camera or broker; "
        "the service's ExecStartPre)",
    )


def run(args) -> int:
    results: list[tuple[str, bool | None, str]] = []
    config = _record(results, "config", lambda: _check_config(args.config))
    if getattr(args, "config_only", False):
        print_table(results, file=sys.stdout)
        return 0 if all(ok for _, ok, _ in results) else 1
    found: dict[str, object] = {}
    checks: list[tuple[str, Callable]] = [
        ("model", _check_model),
        ("camera", _check_camera),
        ("inference", lambda config: _check_inference(config, found["model"], found["camera"])),
        ("outbox", _check_outbox),
        ("broker", _check_broker),
        ("tracking", _check_tracking),
    ]
    try:
        for name, check in checks:
            if config is None:
                results.append((name, None, "skipped: the configuration is invalid"))
            elif name == "inference" and (found["model"] is None or found["camera"] is None):
                results.append((name, None, "skipped: needs a loaded model and a camera frame"))
            else:
                found[name] = _record(results, name, lambda check=check: check(config))
    finally:
        if found.get("model") is not None:
            found["model"].close()
    print_table(results, file=sys.stdout)
    return 0 if all(ok for _, ok, _ in results) else 1


def _record(results, name: str, check: Callable):
    """Run one check: its return value is (detail, value); errors become FAIL rows."""
    try:
        detail, value = check()
    except SteelInspectError as exc:
        results.append((name, False, str(exc)))
        return None
    except Exception as exc:  # a check must report, never crash the table
        results.append((name, False, f"{type(exc).__name__}: {exc}"))
        return None
    results.append((name, True, detail))
    return value


def _check_config(path):
    from edge.config import load_config  # noqa: PLC0415

    config = load_config(path)
    return f"{path}: valid (line {config.site.line}, camera {config.site.camera})", config


def _check_model(config):
    """Load and warm up (black tiles), then infer grey and noise tiles: outputs are checked."""
    import numpy as np  # noqa: PLC0415

    from edge.defects.events import DefectRule  # noqa: PLC0415
    from edge.inference.batchsize import configured_max_batch  # noqa: PLC0415
    from edge.inference.cpuflags import inference_threads  # noqa: PLC0415
    from edge.inference.model import NO_CAM, load_model  # noqa: PLC0415
    from edge.inference.pipeline import FrameProcessor  # noqa: PLC0415
    from edge.inference.store import resolve_configured  # noqa: PLC0415

    m = config.model
    engine, backend = resolve_configured(m.path, m.backend)
    model = load_model(engine, backend, max_batch=configured_max_batch(config, engine),
                       threads=inference_threads(m.threads),
                       allow_ungated=m.allow_ungated)
    try:
        rule = DefectRule(model.card, config.events)
        FrameProcessor(model, rule, config.tiling)  # tiling that cannot cut this model's tiles
        spec = model.runtime.input_spec
        tiles = np.random.default_rng(0).integers(0, 256, (2, *spec.tile_shape), dtype=np.uint8)
        tiles[0] = 128
        model.runtime.infer_all(tiles)
    except BaseException:
        model.close()
        raise
    card = model.card
    thresholds = ", ".join(
        f"{n} {t:.2f}" for n, t in zip(rule.class_names, rule.thresholds, strict=True)
    )
    cam = model.runtime.cam_shape
    localisation = f"cam {cam[0]}x{cam[1]}" if cam else NO_CAM
    if model.runtime.cam_problem:
        localisation = f"cam dropped ({model.runtime.cam_problem}): defect boxes stay tile-sized"
    detail = (f"{card.name} {card.version} ({m.backend}, {spec.width}x{spec.height} tiles, "
              f"batch {spec.max_batch}; thresholds {thresholds}; {localisation})")
    if model.path != Path(m.path):  # the model store: say which version current named
        detail = f"{detail}\n  from {model.path}"
    if model.admission.warning:
        detail = f"{detail}\n  WARNING: {model.admission.warning}"
    return detail, model


def _check_inference(config, model, image):
    """The camera's frame through the daemon's own FrameProcessor: tiling, runtime, checks."""
    from edge.defects.events import DefectRule  # noqa: PLC0415
    from edge.inference.pipeline import FrameProcessor  # noqa: PLC0415

    processor = FrameProcessor(model, DefectRule(model.card, config.events), config.tiling)
    defects, seconds = processor.process(image)
    classes = sorted({d["class_name"] for d in defects})
    found = f"{len(defects)} defect tiles ({', '.join(classes)})" if defects else "no defects"
    return f"camera frame: {found}, outputs valid, {seconds * 1e3:.1f} ms in the runtime", True


def _check_camera(config):
    from edge.sources import make_source  # noqa: PLC0415

    source = make_source(config.camera)
    with source:
        deadline = time.monotonic() + _CAMERA_TIMEOUT_S
        while time.monotonic() < deadline:
            frame = source.read(0.5)
            if frame is not None:
                height, width = frame.image.shape[:2]
                detail = f"{config.camera.type}: frame {frame.frame_id} {width}x{height}"
                return detail, frame.image
        raise SteelInspectError(
            f"{config.camera.type}: no frame within {_CAMERA_TIMEOUT_S:g} s (state {source.state})"
        )


def _check_outbox(config):
    path = Path(config.outbox.path)
    folder = path.parent
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None or not os.access(existing, os.W_OK | os.X_OK):
        raise SteelInspectError(f"outbox.path: {folder} is not writable")
    if not path.exists():
        return f"{path} (will be created)", True
    return f"{path} ({_outbox_integrity(path)})", True


def _outbox_integrity(path: Path) -> str:
    """Read-only quick_check (safe beside the running daemon); raises on a damaged file."""
    import sqlite3  # noqa: PLC0415

    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
        try:
            result = [row[0] for row in db.execute("PRAGMA quick_check")]
            waiting = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as exc:
        reason = f"outbox.path: {path}: cannot be read as an outbox: {exc}"
        raise SteelInspectError(reason) from None
    if result != ["ok"]:
        raise SteelInspectError(f"outbox.path: {path}: damaged: {'; '.join(result[:3])}")
    return f"integrity ok, {waiting} unsent events"


def _check_broker(config):
    from edge.delivery.mqtt import probe_broker  # noqa: PLC0415

    mqtt = config.mqtt
    ok, detail = probe_broker(mqtt, config.site, _BROKER_TIMEOUT_S)
    auth = _auth_description(mqtt)
    if not ok:
        raise SteelInspectError(f"{mqtt.host}:{mqtt.port}: {detail} ({auth})")
    return f"{detail} ({auth})", True


def _check_tracking(config):
    """The coil tracking source: none, the MQTT topic (on the broker checked above), or one
    OPC UA read of the coil node."""
    tracking = config.tracking
    if tracking.source == "none":
        return "none: coil_id is null, positions count from the daemon's start", True
    if tracking.source == "mqtt":
        return f"mqtt: coil messages on {tracking.topic} (QoS 1, retained honoured)", True
    from edge.tracking.probe import probe_opcua  # noqa: PLC0415

    return probe_opcua(tracking), True


def _auth_description(mqtt) -> str:
    tls = "TLS" if mqtt.use_tls else "no TLS"
    if not mqtt.username:
        return f"{tls}, anonymous"
    if mqtt.password_file is not None:
        where = f"password from {mqtt.password_file}"
    elif mqtt.password_credential is not None:
        where = f"password from credential {mqtt.password_credential}"
    else:
        where = "no password"
    return f"{tls}, user {mqtt.username}, {where}"


def print_table(results, file) -> None:
    width = max(len(name) for name, _, _ in results)
    for name, ok, detail in results:
        mark = "OK" if ok else ("SKIP" if ok is None else "FAIL")
        print(f"{name:<{width}}  {mark:<4}  {detail}", file=file)
