"""systemd/install.sh in a temporary root: the tree it lays out, idempotence, uninstall, purge.

Host tools the installer may only use on a real install (systemctl, useradd, chown...) are shadowed
by stubs that log the call and fail, so a run under --root that touched the host would show.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALLER = REPO / "systemd" / "install.sh"
UNIT = "steel-inspect-edge.service"
CONSOLE_UNIT = "steel-inspect-console.service"
HOST_TOOLS = ("systemctl", "useradd", "userdel", "usermod", "groupadd", "chown", "chgrp")


@pytest.fixture
def host_guard(tmp_path):
    """A PATH whose host-changing tools only record that they were called."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    calls = tmp_path / "host-calls.log"
    for tool in HOST_TOOLS:
        script = stubs / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{calls}"\nexit 1\n')
        script.chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}"}
    return env, calls, stubs


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "root"
    path.mkdir()
    return path


def installer(env, *args, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["bash", str(INSTALLER), *args], env=env, capture_output=True, text=True, timeout=60
    )
    if check:
        assert result.returncode == 0, result.stderr + result.stdout
    return result


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with its type, permissions and content hash or link target."""
    tree = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        mode = stat.S_IMODE(info.st_mode)
        if path.is_symlink():
            tree[str(path.relative_to(root))] = ("link", os.readlink(path))
        elif path.is_dir():
            tree[str(path.relative_to(root))] = ("dir", mode)
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            tree[str(path.relative_to(root))] = ("file", mode, digest)
    return tree


def expected_extras() -> str:
    return "edge,console,tensorrt" if shutil.which("nvidia-smi") else "edge,console"


def test_install_lays_out_the_service_without_touching_the_host(host_guard, root):
    env, calls, _ = host_guard
    result = installer(env, "--root", str(root), "--no-install")

    unit = root / "etc/systemd/system" / UNIT
    assert unit.read_bytes() == (REPO / "systemd" / UNIT).read_bytes()
    console = root / "etc/systemd/system" / CONSOLE_UNIT  # installed, not enabled
    assert console.read_bytes() == (REPO / "systemd" / CONSOLE_UNIT).read_bytes()
    assert not (root / "etc/systemd/system/multi-user.target.wants" / CONSOLE_UNIT).exists()
    wants = root / "etc/systemd/system/multi-user.target.wants" / UNIT
    assert os.readlink(wants) == f"/etc/systemd/system/{UNIT}"
    config = root / "etc/steel-inspect/edge.toml"
    assert config.read_bytes() == (REPO / "edge/example.toml").read_bytes()
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "etc/steel-inspect").stat().st_mode) == 0o750
    password = root / "etc/steel-inspect/mqtt-password"
    assert password.read_bytes() == b"" and stat.S_IMODE(password.stat().st_mode) == 0o600
    sysusers = (root / "usr/lib/sysusers.d/steel-inspect.conf").read_text()
    assert 'u steel-inspect - "steel-inspect edge daemon" /var/lib/steel-inspect' in sysusers
    assert (root / "opt/steel-inspect/docs/line-pc.md").is_file()
    assert not (root / "opt/steel-inspect/venv").exists()  # --no-install
    assert f"would install steel-inspect[{expected_extras()}]" in result.stdout
    assert not calls.exists(), calls.read_text()


def test_installed_example_configuration_is_valid(host_guard, root):
    env, _, _ = host_guard
    installer(env, "--root", str(root), "--no-install")
    edge = Path(sys.executable).with_name("edge")
    config = root / "etc/steel-inspect/edge.toml"
    result = subprocess.run(
        [str(edge), "check", "--config", str(config), "--config-only"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config  OK" in result.stdout


def test_install_twice_gives_the_same_tree_and_keeps_an_edited_config(host_guard, root):
    env, calls, _ = host_guard
    installer(env, "--root", str(root), "--no-install")
    first = snapshot(root)
    installer(env, "--root", str(root), "--no-install")
    assert snapshot(root) == first

    config = root / "etc/steel-inspect/edge.toml"
    config.write_text("# edited on site\n")
    (root / "etc/steel-inspect/mqtt-password").write_text("s3cret\n")
    result = installer(env, "--root", str(root), "--no-install")
    assert config.read_text() == "# edited on site\n"
    assert (root / "etc/steel-inspect/mqtt-password").read_text() == "s3cret\n"
    assert "keeping the existing" in result.stdout
    assert not calls.exists()


def test_uninstall_keeps_config_and_data_and_purge_removes_them(host_guard, root):
    env, calls, _ = host_guard
    installer(env, "--root", str(root), "--no-install")
    outbox = root / "var/lib/steel-inspect/outbox.sqlite"
    assert (root / "var/lib/steel-inspect/models").is_dir()  # the model store, made by install
    outbox.write_bytes(b"events not yet acknowledged")
    (root / "opt/steel-inspect/venv/bin").mkdir(parents=True)  # as a real install leaves it
    model = root / "opt/steel-inspect/models/model.onnx"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"onnx")

    installer(env, "--root", str(root), "--uninstall")
    assert not (root / "etc/systemd/system" / UNIT).exists()
    assert not (root / "etc/systemd/system" / CONSOLE_UNIT).exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants" / UNIT).is_symlink()
    assert not (root / "opt/steel-inspect/venv").exists()
    assert not (root / "opt/steel-inspect/docs").exists()
    assert model.read_bytes() == b"onnx"
    assert outbox.read_bytes() == b"events not yet acknowledged"
    assert (root / "etc/steel-inspect/edge.toml").is_file()

    installer(env, "--root", str(root), "--uninstall", "--purge")
    assert not (root / "etc/steel-inspect").exists()
    assert not (root / "var/lib/steel-inspect").exists()
    assert not (root / "opt/steel-inspect").exists()
    assert not (root / "usr/lib/sysusers.d/steel-inspect.conf").exists()
    assert not calls.exists(), calls.read_text()


@pytest.mark.parametrize(
    "compute_cap, pin",
    [("6.1", "(tensorrt==8.6.1) "), ("7.5", "(tensorrt>=10,<11) "), ("8.6", "(tensorrt>=10,<11) "),
     ("", "")],
)
def test_tensorrt_extra_is_added_with_a_gpu_and_pinned_by_generation(
    host_guard, root, compute_cap, pin
):
    env, _, stubs = host_guard
    fake_smi = stubs / "nvidia-smi"  # prints what `--query-gpu=compute_cap` prints
    fake_smi.write_text(f"#!/bin/sh\necho '{compute_cap}'\n")
    fake_smi.chmod(0o755)
    result = installer(env, "--root", str(root), "--no-install")
    assert f"would install steel-inspect[edge,console,tensorrt] {pin}into" in result.stdout
    result = installer(env, "--root", str(root), "--no-install", "--extras", "edge,tensorrt")
    assert f"would install steel-inspect[edge,tensorrt] {pin}into" in result.stdout  # not twice


@pytest.mark.parametrize(
    "args, message",
    [
        (["--purge"], "--purge goes with --uninstall"),
        (["--root", "relative/dir"], "--root must be an absolute path"),
        (["--bogus"], "unknown option '--bogus'"),
    ],
)
def test_bad_options_are_one_line_errors(host_guard, args, message):
    env, _, _ = host_guard
    result = installer(env, *args, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith(f"install.sh: error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1
