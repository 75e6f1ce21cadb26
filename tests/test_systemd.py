"""The systemd unit: systemd-analyze accepts it, its hardening score, and its command lines parse.

systemd-analyze must exist (it does on any systemd host; nothing is installed here). `verify`
checks that ExecStart binaries exist, so it runs on a copy whose /opt/steel-inspect paths point
into a temporary root holding stand-in executables.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT_FILE = REPO / "systemd" / "steel-inspect-edge.service"
MAX_EXPOSURE = 4.0

analyze = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(analyze is None, reason="systemd-analyze is not installed")


def unit_settings(text: str) -> dict[str, list[str]]:
    """`Key` -> values in file order (keys may repeat), ignoring comments and sections."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key, []).append(value)
    return settings


@pytest.fixture
def staged_unit(tmp_path) -> Path:
    """The unit with /opt/steel-inspect moved under tmp_path, where `edge` is a stub."""
    opt = tmp_path / "opt" / "steel-inspect"
    edge = opt / "venv" / "bin" / "edge"
    edge.parent.mkdir(parents=True)
    edge.write_text("#!/bin/sh\nexit 0\n")
    edge.chmod(0o755)
    text = UNIT_FILE.read_text().replace("/opt/steel-inspect", str(opt))
    unit = tmp_path / UNIT_FILE.name
    unit.write_text(text)
    return unit


def verify(unit: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )


def test_systemd_analyze_verify_accepts_the_unit_without_warnings(staged_unit):
    result = verify(staged_unit)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""


def test_verify_would_report_a_broken_unit(staged_unit):
    """The check above can fail: the same tool flags a misspelt key and a missing binary."""
    broken = staged_unit.with_name("broken.service")
    text = staged_unit.read_text().replace("NoNewPrivileges=", "NoNewPrivilege=")
    broken.write_text(text.replace(str(staged_unit.parent / "opt"), "/nonexistent/opt"))
    output = verify(broken)
    messages = output.stdout + output.stderr
    assert "Unknown key" in messages and "NoNewPrivilege" in messages
    assert "/nonexistent/opt/steel-inspect/venv/bin/edge" in messages


def offline_security_supported() -> bool:
    help_text = subprocess.run(
        [analyze, "security", "--help"], capture_output=True, text=True, timeout=30
    ).stdout
    return "--offline" in help_text


def test_security_exposure_is_at_most_4(staged_unit):
    if not offline_security_supported():
        pytest.skip("this systemd-analyze has no `security --offline` (systemd < 250)")
    result = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(staged_unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_the_command_lines_parse_with_the_real_cli():
    from edge.cli import COMMANDS  # noqa: PLC0415
    from edge.clirunner import build_parser  # noqa: PLC0415

    settings = unit_settings(UNIT_FILE.read_text())
    parser = build_parser("edge", "", COMMANDS)
    (pre,) = settings["ExecStartPre"]
    (start,) = settings["ExecStart"]
    pre_args = parser.parse_args(shlex.split(pre)[1:])
    start_args = parser.parse_args(shlex.split(start)[1:])
    assert (pre_args.command, pre_args.config_only) == ("check", True)
    assert start_args.command == "run"
    assert pre_args.config == start_args.config == "/etc/steel-inspect/edge.toml"
    assert shlex.split(start)[0] == "/opt/steel-inspect/venv/bin/edge"
    (reload,) = settings["ExecReload"]  # edge run reloads the model on SIGHUP
    assert shlex.split(reload) == ["/bin/kill", "-HUP", "$MAINPID"]


def test_the_unit_keeps_what_the_gpu_and_camera_need():
    settings = unit_settings(UNIT_FILE.read_text())
    assert settings["Type"] == ["notify"] and settings["NotifyAccess"] == ["main"]
    assert settings["User"] == ["steel-inspect"] and settings["SupplementaryGroups"] == ["video"]
    assert settings["LoadCredential"] == ["mqtt-password:/etc/steel-inspect/mqtt-password"]
    assert settings["StateDirectory"] == ["steel-inspect"]
    assert {"char-nvidia* rw", "char-usb_device rw"} <= set(settings["DeviceAllow"])
    # hiding devices or forbidding W+X pages would break CUDA / the camera (see the comments)
    assert "PrivateDevices" not in settings and "MemoryDenyWriteExecute" not in settings
    assert "PrivateNetwork" not in settings
