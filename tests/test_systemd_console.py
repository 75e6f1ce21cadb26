"""The console's systemd unit: systemd-analyze accepts it, exposure <= 4.0, its command parses."""

from __future__ import annotations

import re
import shlex
import subprocess

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
