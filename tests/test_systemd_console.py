"""The console's systemd unit: systemd-analyze accepts it, exposure <= 4.0, its command parses,
and its command line starts the console from the installed layout in an approximated sandbox
(this host has no systemd as PID 1: `systemctl` and `systemd-run --user` cannot run units)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_systemd import (
    MAX_EXPOSURE,
    REPO,
    analyze,
    offline_security_supported,
    unit_settings,
    verify,
)

UNIT_FILE = REPO / "systemd" / "steel-inspect-console.service"
pytestmark = pytest.mark.skipif(analyze is None, reason="systemd-analyze is not installed")


@pytest.fixture
def staged_unit(tmp_path):
    opt = tmp_path / "opt" / "steel-inspect"
    edge = opt / "venv" / "bin" / "edge"
    edge.parent.mkdir(parents=True)
    edge.write_text("#!/bin/sh\nexit 0\n")
    edge.chmod(0o755)
    unit = tmp_path / UNIT_FILE.name
    unit.write_text(UNIT_FILE.read_text().replace("/opt/steel-inspect", str(opt)))
    return unit


def test_systemd_analyze_verify_accepts_the_console_unit(staged_unit):
    result = verify(staged_unit)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stderr


def test_console_security_exposure_is_at_most_4(staged_unit):
    if not offline_security_supported():
        pytest.skip("this systemd-analyze has no `security --offline` (systemd < 250)")
    result = subprocess.run([analyze, "security", "--offline=true", "--no-pager", str(staged_unit)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_the_console_command_line_parses_and_keeps_the_daemons_user():
    from edge.cli import COMMANDS  # noqa: PLC0415
    from edge.clirunner import build_parser  # noqa: PLC0415

    settings = unit_settings(UNIT_FILE.read_text())
    (start,) = settings["ExecStart"]
    args = build_parser("edge", "", COMMANDS).parse_args(shlex.split(start)[1:])
    assert (args.command, args.config) == ("console", "/etc/steel-inspect/edge.toml")
    assert settings["User"] == ["steel-inspect"] and "StateDirectory" not in settings
    assert settings["PrivateDevices"] == ["yes"] and settings["MemoryDenyWriteExecute"] == ["yes"]


def sandbox_supported() -> bool:
    """Mount namespaces (unshare -m) and setpriv: root on Linux, as on this CI host."""
    if not (shutil.which("unshare") and shutil.which("setpriv")):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -o remount,bind,ro /"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


def install_layout(root: Path, broker_port: int, console_port: int) -> Path:
    """systemd/install.sh --root (no venv), the test's venv as /opt/steel-inspect/venv, and the
    installed edge.toml pointed at the test's broker and port, reading its MQTT password and the
    console's Basic auth password through credentials as the unit and a drop-in would."""
    subprocess.run(["bash", str(REPO / "systemd/install.sh"), "--root", str(root), "--no-install"],
                   check=True, capture_output=True, timeout=60)
    (root / "opt/steel-inspect/venv").symlink_to(Path(sys.prefix))
    config = root / "etc/steel-inspect/edge.toml"
    text = config.read_text().replace("port = 1883 ", f"port = {broker_port} ")
    text = text.replace('# username = "line1-cam1"', 'username = "line1-cam1"')
    text = text.replace('# password_credential = "mqtt-password"',
                        'password_credential = "mqtt-password"')
    text = text.replace('listen = "127.0.0.1:8080"', f'listen = "127.0.0.1:{console_port}"\n'
                        'basic_user = "quality"\nbasic_password_credential = "console-password"')
    config.write_text(text)
    (root / "etc/steel-inspect/mqtt-password").write_text("broker-secret\n")
    (root / "etc/steel-inspect/console-password").write_text("console-secret\n")
    return config


@pytest.mark.skipif(not sandbox_supported(), reason="needs root for mount namespaces")
def test_the_console_starts_from_the_installed_layout_as_its_unit_starts_it(tmp_path, mqtt_broker):
    """No systemd as PID 1 here: the unit's ExecStart, Environment, UMask and LoadCredential run
    verbatim (paths under the installed root) with NoNewPrivileges, an empty capability bounding
    set and the whole file system read-only (ProtectSystem=strict, stricter), approximated with
    unshare and setpriv. Not approximated: User=, PrivateUsers/Devices/Tmp, the seccomp filter,
    MemoryDenyWriteExecute, RestrictAddressFamilies."""
    import base64  # noqa: PLC0415
    import time  # noqa: PLC0415
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    from tests.fixtures.broker import free_port, wait_until  # noqa: PLC0415

    root, port = tmp_path / "root", free_port()
    install_layout(root, mqtt_broker.port, port)
    settings = unit_settings(UNIT_FILE.read_text())
    (start,) = settings["ExecStart"]
    argv = [a.replace("/opt/steel-inspect", str(root / "opt/steel-inspect"))
            .replace("/etc/steel-inspect", str(root / "etc/steel-inspect"))
            for a in shlex.split(start)]
    credentials = tmp_path / "credentials"  # what systemd makes of LoadCredential=
    credentials.mkdir()
    for spec in settings["LoadCredential"] + ["console-password:/etc/steel-inspect/"
                                               "console-password"]:  # the drop-in's
        name, source = spec.split(":", 1)
        shutil.copy(source.replace("/etc/steel-inspect", str(root / "etc/steel-inspect")),
                    credentials / name)
    env = {"PATH": "/usr/bin:/bin", "CREDENTIALS_DIRECTORY": str(credentials),
           **dict(e.split("=", 1) for e in settings["Environment"])}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]  # a worktree's sources, not the venv's
    umask = settings["UMask"][0]
    sandbox = (f"umask {umask} && mount -o remount,bind,ro / && exec setpriv --no-new-privs "
               '--bounding-set=-all --inh-caps=-all --ambient-caps=-all -- "$@"')
    process = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                sandbox, "sh", *argv], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    brokers: list[str] = []  # the broker states /api/state reported, for a failure message

    def status(password: str | None) -> int:
        headers = {} if password is None else {"Authorization": "Basic " + base64.b64encode(
            f"quality:{password}".encode()).decode()}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/state", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                body = json.load(response)
                brokers.append(body["broker"])
                return response.status if body["broker"] == "connected" else -1
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0

    try:
        assert wait_until(lambda: process.poll() is not None or status(None) == 401, 40)
        if not wait_until(lambda: status("console-secret") == 200, 20):  # and on the broker
            process.kill()
            output, _ = process.communicate(timeout=10)
            pytest.fail(f"console not on the broker within 20 s (states {brokers[-3:]}):\n"
                        f"{output[-3000:]}")
        assert status("broker-secret") == 401
        started = time.monotonic()
        process.terminate()  # systemctl stop: SIGTERM, TimeoutStopSec=15s
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode in (0, -15), output  # -15: uvicorn re-raises it; systemd: clean
    assert time.monotonic() - started < 5
    assert "Traceback" not in output and "secret" not in output, output
    assert "console of line L1 on http://127.0.0.1:" in output
