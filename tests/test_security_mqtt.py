"""Security: TLS to mosquitto with a test CA, user/password authentication, the broker's ACL,
no secret in output.

The broker is the real mosquitto with a TLS listener (a server certificate signed by a CA the
test makes with openssl) and/or `allow_anonymous false` with a password file made by
`mosquitto_passwd`. The daemon runs in-process (logs captured at DEBUG) and as `edge run`
child processes; `edge check` runs in-process and as a child process.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
import time

import pytest

from edge.cli import main as edge_main
from edge.config import parse_config
from tests.fixtures.broker import Subscriber
from tests.fixtures.edge_daemon import (
    DaemonProcess,
    daemon_sections,
    frame_with_tiles,
    validate_messages,
    write_config,
    write_frames,
)
from tests.fixtures.reliability import running_daemon, wait_until
from tests.fixtures.tls import mosquitto_tls_lines

USER = "line1"
SECRET = "Xq7-secret-Pw-4711"  # searched for in every output below
FRAMES = 5


@pytest.fixture
def frames(tmp_path):
    return write_frames(tmp_path / "frames",
                        {f"{i}.png": frame_with_tiles([200, 0]) for i in range(FRAMES)})


@pytest.fixture
def password_broker(tmp_path, make_broker, tls_files):
    """A TLS broker that accepts USER with SECRET only."""
    passwd = shutil.which("mosquitto_passwd")
    if passwd is None:
        pytest.skip("mosquitto_passwd is not installed")
    users = tmp_path / "mosquitto.passwd"
    subprocess.run([passwd, "-b", "-c", str(users), USER, SECRET], check=True,
                   capture_output=True)
    return make_broker(extra_config=mosquitto_tls_lines(tls_files.server_cert,
                                                        tls_files.server_key)
                       + f"allow_anonymous false\npassword_file {users}\n")


def password_file(folder, text: str, mode: int = 0o600):
    path = folder / "mqtt-password"
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def sections_for(tmp_path, broker, model, images, **mqtt):
    return daemon_sections(tmp_path, broker, model, images,
                           mqtt={"reconnect": {"initial": 0.2, "max": 0.8},
                                 "flush_timeout": 1.0, **mqtt})


def check_rows(capsys, config_path) -> tuple[int, dict[str, str], str]:
    capsys.readouterr()
    code = edge_main(["check", "--config", str(config_path)])
    captured = capsys.readouterr()
    rows = {line.split()[0]: line for line in captured.out.splitlines()}
    return code, rows, captured.out + captured.err


# -- TLS ------------------------------------------------------------------------------------------


def test_tls_with_the_test_ca_verifies_the_broker_and_delivers(
    tmp_path, make_broker, mean_model, frames, tls_files, caplog, capsys
):
    caplog.set_level(logging.INFO)
    broker = make_broker(extra_config=mosquitto_tls_lines(tls_files.server_cert,
                                                          tls_files.server_key))
    sections = sections_for(tmp_path, broker, mean_model, frames, ca_file=str(tls_files.ca))
    with running_daemon(parse_config(sections), lossless=True) as daemon:
        assert wait_until(lambda: daemon.publisher.acked == FRAMES), daemon.status_line()
        assert daemon.mqtt.state == "connected" and daemon.outbox.depth == 0
    assert "(TLS on)" in caplog.text and "connected to MQTT broker" in caplog.text

    code, rows, _ = check_rows(capsys, write_config(tmp_path / "edge.toml", sections))
    assert code == 0 and "OK" in rows["broker"] and "(TLS, anonymous)" in rows["broker"]


@pytest.mark.parametrize(
    ("server", "ca", "reason"),
    [
        ("right", "other", "unable to get local issuer certificate"),
        ("wrong-name", "right", "IP address mismatch"),
        ("expired", "right", "certificate has expired"),
    ],
    ids=["unknown-ca", "certificate-for-another-host", "expired-certificate"],
)
def test_tls_broker_that_fails_verification_is_refused_clearly(
    tmp_path, make_broker, mean_model, frames, tls_files, caplog, capsys, server, ca, reason
):
    cert, key = {
        "right": (tls_files.server_cert, tls_files.server_key),
        "wrong-name": (tls_files.wrong_name_cert, tls_files.wrong_name_key),
        "expired": (tls_files.expired_cert, tls_files.expired_key),
    }[server]
    broker = make_broker(extra_config=mosquitto_tls_lines(cert, key))
    ca_file = tls_files.ca if ca == "right" else tls_files.other_ca
    sections = sections_for(tmp_path, broker, mean_model, frames, ca_file=str(ca_file))
    with running_daemon(parse_config(sections), 0.5, lossless=True) as daemon:
        assert wait_until(lambda: daemon.mqtt.state.startswith("TLS failed: "))
        assert wait_until(lambda: daemon.outbox.depth == FRAMES)
        time.sleep(1.5)  # several attempts
        state = daemon.mqtt.state
        assert not daemon.mqtt.ready.is_set() and daemon.publisher.acked == 0
        assert "TLS failed" in daemon.status_line()
    assert "CERTIFICATE_VERIFY_FAILED" in state and reason in state
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("TLS failed" in m and reason in m for m in errors), errors
    assert "connected to MQTT broker" not in caplog.text

    code, rows, _ = check_rows(capsys, write_config(tmp_path / "edge.toml", sections))
    assert code == 1 and rows["broker"].split()[1] == "FAIL"
    assert "TLS failed" in rows["broker"] and reason in rows["broker"]


def test_mutual_tls_with_a_client_certificate_delivers(
    tmp_path, make_broker, mean_model, frames, tls_files, capsys
):
    broker = make_broker(extra_config=mosquitto_tls_lines(
        tls_files.server_cert, tls_files.server_key, client_ca=tls_files.ca))
    sections = sections_for(tmp_path, broker, mean_model, frames, ca_file=str(tls_files.ca),
                            cert_file=str(tls_files.client_cert),
                            key_file=str(tls_files.client_key))
    with running_daemon(parse_config(sections), lossless=True) as daemon:
        assert wait_until(lambda: daemon.publisher.acked == FRAMES), daemon.status_line()
        assert daemon.mqtt.state == "connected"

    code, rows, _ = check_rows(capsys, write_config(tmp_path / "edge.toml", sections))
    assert code == 0 and "OK" in rows["broker"], rows["broker"]


def test_mutual_tls_without_a_client_certificate_is_refused_clearly(
    tmp_path, make_broker, mean_model, frames, tls_files, caplog, capsys
):
    broker = make_broker(extra_config=mosquitto_tls_lines(
        tls_files.server_cert, tls_files.server_key, client_ca=tls_files.ca))
    sections = sections_for(tmp_path, broker, mean_model, frames, ca_file=str(tls_files.ca))
    with running_daemon(parse_config(sections), 0.5, lossless=True) as daemon:
        assert wait_until(lambda: daemon.outbox.depth == FRAMES)
        assert wait_until(lambda: "certificate required" in daemon.mqtt.state), daemon.mqtt.state
        time.sleep(1.5)  # several attempts, none gets through
        assert not daemon.mqtt.ready.is_set() and daemon.publisher.acked == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("certificate required" in m for m in errors), errors
    assert "connected to MQTT broker" not in caplog.text

    code, rows, _ = check_rows(capsys, write_config(tmp_path / "edge.toml", sections))
    assert code == 1 and rows["broker"].split()[1] == "FAIL"
    assert "certificate required" in rows["broker"], rows["broker"]


# -- user and password ----------------------------------------------------------------------------


def test_right_password_over_tls_connects_and_delivers(
    tmp_path, password_broker, mean_model, frames, tls_files, caplog, capsys
):
    caplog.set_level(logging.DEBUG)
    secret = password_file(tmp_path, SECRET)
    sections = sections_for(tmp_path, password_broker, mean_model, frames,
                            ca_file=str(tls_files.ca), username=USER, password_file=str(secret))
    with running_daemon(parse_config(sections), lossless=True) as daemon:
        assert wait_until(lambda: daemon.publisher.acked == FRAMES), daemon.status_line()
    code, rows, output = check_rows(capsys, write_config(tmp_path / "edge.toml", sections))
    assert code == 0 and f"(TLS, user {USER}, password from {secret})" in rows["broker"]
    assert SECRET not in caplog.text + output
    assert "can be read by other users" not in caplog.text  # mode 0600


def test_wrong_password_is_refused_clearly_and_retried_with_backoff(
    tmp_path, password_broker, mean_model, frames, tls_files, caplog, capsys
):
    caplog.set_level(logging.DEBUG)
    secret = password_file(tmp_path, "not-" + SECRET)
    sections = sections_for(tmp_path, password_broker, mean_model, frames,
                            ca_file=str(tls_files.ca), username=USER, password_file=str(secret))
    with running_daemon(parse_config(sections), 0.5, lossless=True) as daemon:
        assert wait_until(lambda: daemon.mqtt.state.startswith("refused"))
        time.sleep(3.0)
        state = daemon.mqtt.state
        assert daemon.outbox.depth == FRAMES and daemon.publisher.acked == 0
    refusals = [r.created for r in caplog.records
                if r.levelno == logging.ERROR and "refused the connection" in r.getMessage()]
    gaps = [later - earlier for earlier, later in zip(refusals, refusals[1:], strict=False)]
    assert state in ("refused: Not authorized", "refused: Bad user name or password")
    # backoff 0.2, 0.4, 0.8, 0.8... s (without it: hundreds of attempts a second)
    assert len(gaps) >= 4 and 0.15 <= gaps[0] <= 0.5
    assert gaps[1] >= 1.5 * gaps[0] and gaps[2] >= 1.5 * gaps[1]
    assert all(0.6 <= g <= 1.3 for g in gaps[2:])
    assert "connected to MQTT broker" not in caplog.text

    code, rows, output = check_rows(capsys, write_config(tmp_path / "edge.toml", sections))
    assert code == 1 and rows["broker"].split()[1] == "FAIL" and "refused" in rows["broker"]
    assert "not-" + SECRET not in caplog.text + output
    print(f"\nwrong password: state {state!r}; {len(refusals)} attempts, gaps "
          + ", ".join(f"{g:.2f}" for g in gaps) + " s")


def test_the_password_never_appears_in_run_or_check_output(
    tmp_path, password_broker, mean_model, frames, tls_files
):
    outputs = []
    for label, text in (("right", SECRET), ("wrong", SECRET[::-1])):
        folder = tmp_path / label
        folder.mkdir()
        secret = password_file(folder, text)
        sections = sections_for(folder, password_broker, mean_model, frames,
                                ca_file=str(tls_files.ca), username=USER,
                                password_file=str(secret))
        sections["logging"] = {"level": "DEBUG"}
        config = write_config(folder / "edge.toml", sections)
        daemon = DaemonProcess(config)
        try:
            expected = "connected to MQTT broker" if label == "right" else "refused the connection"
            assert wait_until(lambda d=daemon, e=expected: e in d.log, timeout=30), daemon.log
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(30) == 0, daemon.log
        finally:
            daemon.stop()
        check = subprocess.run(
            [sys.executable, "-m", "edge.cli", "-v", "check", "--config", str(config)],
            capture_output=True, text=True, timeout=60,
        )
        assert check.returncode == (0 if label == "right" else 1), check.stdout + check.stderr
        outputs += [(label, daemon.log), (label, check.stdout + check.stderr)]
    for label, output in outputs:
        assert SECRET not in output and SECRET[::-1] not in output, label


# -- where the password is kept -------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o600])
def test_a_password_file_others_can_read_is_warned_about(
    tmp_path, password_broker, mean_model, frames, tls_files, caplog, capsys, mode
):
    secret = password_file(tmp_path, SECRET, mode)
    sections = sections_for(tmp_path, password_broker, mean_model, frames,
                            ca_file=str(tls_files.ca), username=USER, password_file=str(secret))
    code, rows, output = check_rows(capsys, write_config(tmp_path / "edge.toml", sections))
    assert code == 0, output
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and "can be read by other users" in r.getMessage()]
    if mode & 0o077:
        assert warnings and f"mqtt.password_file: {secret} " in warnings[0]
        assert f"(mode {mode:04o})" in warnings[0] and "chmod 600" in warnings[0]
    else:
        assert warnings == []
    assert SECRET not in caplog.text + output


def test_an_inline_password_is_refused_without_echoing_it(tmp_path, mqtt_broker, mean_model,
                                                          frames, capsys):
    sections = sections_for(tmp_path, mqtt_broker, mean_model, frames, username=USER,
                            password=SECRET)
    config = write_config(tmp_path / "edge.toml", sections)
    assert edge_main(["run", "--config", str(config)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"edge run: error: {config}: mqtt.password: unknown key\n"
    assert SECRET not in captured.out + captured.err


# -- the broker's ACL -----------------------------------------------------------------------------

BASE = "steel-inspect/L1/cam1"
ACL_WITHOUT_DEFECTS = f"topic read #\ntopic write {BASE}/status\ntopic write {BASE}/stats\n"
ACL_ALL = f"topic read #\ntopic write {BASE}/#\n"


@pytest.fixture
def acl_broker(tmp_path, make_broker):
    """An anonymous broker whose ACL (tmp_path/acl, re-read on reload()) denies the defects."""
    acl = tmp_path / "acl"
    acl.write_text(ACL_WITHOUT_DEFECTS)
    broker = make_broker(extra_config=f"acl_file {acl}\n")
    broker.acl = acl
    return broker


def test_mqtt5_events_the_acl_refuses_stay_in_the_outbox_until_it_allows_them(
    tmp_path, acl_broker, mean_model, frames, caplog
):
    caplog.set_level(logging.INFO)
    subscriber = Subscriber(acl_broker.host, acl_broker.port, f"{BASE}/#")
    sections = sections_for(tmp_path, acl_broker, mean_model, frames, protocol="5")
    try:
        with running_daemon(parse_config(sections), lossless=True) as daemon:
            assert wait_until(lambda: daemon.mqtt.state == "events refused: Not authorized"), \
                daemon.mqtt.state
            assert wait_until(lambda: daemon.outbox.depth == FRAMES)
            # the paho thread sets the state at the PUBACK; the publisher thread counts the
            # refusal when it takes the event back, a moment later
            assert wait_until(lambda: daemon.publisher.refused > 0)
            assert daemon.publisher.acked == 0
            assert daemon.stats_message()["events_refused"] == daemon.publisher.refused
            assert "events refused: Not authorized" in daemon.status_line()

            acl_broker.acl.write_text(ACL_ALL)
            acl_broker.reload()
            assert wait_until(lambda: daemon.publisher.acked == FRAMES, timeout=15), \
                daemon.status_line()
            assert daemon.outbox.depth == 0 and daemon.mqtt.state == "connected"
        assert wait_until(lambda: len(subscriber.payloads("/defects")) == FRAMES)
        events = subscriber.payloads("/defects")
        validate_messages(subscriber.messages())
    finally:
        subscriber.close()
    assert [e["seq"] for e in events] == list(range(1, FRAMES + 1))  # in order, none lost
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("refused an event" in m and f"write access to {BASE}/#" in m for m in errors)
    assert "accepts events again" in caplog.text


def test_mqtt311_cannot_see_what_the_acl_drops(tmp_path, acl_broker, mean_model, frames):
    """The limit MQTT 5 lifts: a 3.1.1 broker acknowledges the denied events and drops them."""
    subscriber = Subscriber(acl_broker.host, acl_broker.port, f"{BASE}/#")
    sections = sections_for(tmp_path, acl_broker, mean_model, frames, protocol="3.1.1")
    try:
        with running_daemon(parse_config(sections), lossless=True) as daemon:
            assert wait_until(lambda: daemon.publisher.acked == FRAMES), daemon.status_line()
            assert daemon.publisher.refused == 0 and daemon.mqtt.state == "connected"
        time.sleep(0.5)
        assert subscriber.payloads("/defects") == []
    finally:
        subscriber.close()


@pytest.mark.parametrize(
    ("protocol", "acl", "code", "detail"),
    [
        ("5", ACL_ALL, 0, "publish allowed"),
        ("5", ACL_WITHOUT_DEFECTS, 1, f"publish to {BASE}/check refused: Not authorized"),
        ("3.1.1", ACL_WITHOUT_DEFECTS, 0, "MQTT 3.1.1: publish rights cannot be checked"),
    ],
    ids=["mqtt5-allowed", "mqtt5-denied", "mqtt311"],
)
def test_edge_check_reports_the_publish_rights_it_can_see(
    tmp_path, acl_broker, mean_model, frames, capsys, protocol, acl, code, detail
):
    acl_broker.acl.write_text(acl)
    acl_broker.reload()
    time.sleep(0.2)
    sections = sections_for(tmp_path, acl_broker, mean_model, frames, protocol=protocol)
    got, rows, _ = check_rows(capsys, write_config(tmp_path / "edge.toml", sections))
    assert got == code and detail in rows["broker"], rows["broker"]
