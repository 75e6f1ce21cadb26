"""`edge check --config FILE`: is this line PC ready to run the daemon?

Checks, in order: the configuration, the model (loaded and warmed up), the camera (opened, one
frame grabbed), the outbox folder and the broker (one connection, without will or birth, so a
running daemon is not disturbed). Prints a table of OK/FAIL with the reason; exits 0 only if all
pass. The password is never printed, only where it comes from.
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
    checks: list[tuple[str, Callable]] = [
        ("model", _check_model),
        ("camera", _check_camera),
        ("outbox", _check_outbox),
        ("broker", _check_broker),
    ]
    if getattr(args, "config_only", False):
        checks = []
    for name, check in checks:
        if config is None:
            results.append((name, None, "skipped: the configuration is invalid"))
        else:
            _record(results, name, lambda check=check: check(config))
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
    from edge.events import DefectRule  # noqa: PLC0415
    from edge.model import NO_CAM, load_model  # noqa: PLC0415

    m = config.model
    model = load_model(m.path, m.backend, max_batch=m.max_batch, threads=m.threads)
    try:
        rule = DefectRule(model.card, config.events)
        card = model.card
        spec = model.runtime.input_spec
        thresholds = ", ".join(
            f"{n} {t:.2f}" for n, t in zip(rule.class_names, rule.thresholds, strict=True)
        )
        cam = model.runtime.cam_shape
        localisation = f"cam {cam[0]}x{cam[1]}" if cam else NO_CAM
        detail = (f"{card.name} {card.version} ({m.backend}, {spec.width}x{spec.height} tiles, "
                  f"batch {spec.max_batch}; thresholds {thresholds}; {localisation})")
    finally:
        model.close()
    return detail, True


def _check_camera(config):
    from edge.sources import make_source  # noqa: PLC0415

    source = make_source(config.camera)
    with source:
        deadline = time.monotonic() + _CAMERA_TIMEOUT_S
        while time.monotonic() < deadline:
            frame = source.read(0.5)
            if frame is not None:
                height, width = frame.image.shape[:2]
                return f"{config.camera.type}: frame {frame.frame_id} {width}x{height}", True
        raise SteelInspectError(
            f"{config.camera.type}: no frame within {_CAMERA_TIMEOUT_S:g} s (state {source.state})"
        )


def _check_outbox(config):
    path = Path(config.outbox.path)
    folder = path.parent
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None or not os.access(existing, os.W_OK | os.X_OK):
        raise SteelInspectError(f"outbox.path: {folder} is not writable")
    state = "exists" if path.exists() else "will be created"
    return f"{path} ({state})", True


def _check_broker(config):
    from edge.mqtt import probe_broker  # noqa: PLC0415

    mqtt = config.mqtt
    ok, detail = probe_broker(mqtt, config.site, _BROKER_TIMEOUT_S)
    auth = _auth_description(mqtt)
    if not ok:
        raise SteelInspectError(f"{mqtt.host}:{mqtt.port}: {detail} ({auth})")
    return f"{detail} ({auth})", True


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
