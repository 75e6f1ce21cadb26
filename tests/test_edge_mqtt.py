"""MQTT connection details on a real broker: TLS accepted and refused; sd_notify datagrams."""

from __future__ import annotations

import os
import threading
import time

import pytest

from edge.config import MqttConfig, SiteConfig
from edge.delivery.mqtt import MqttClient, probe_broker
from edge.observe.sdnotify import SdNotifier, Watchdog
from tests.fixtures.broker import wait_until
from tests.fixtures.edge_daemon import NotifySocket
from tests.fixtures.tls import mosquitto_tls_lines

SITE = SiteConfig(line="L1", camera="cam1")


@pytest.fixture
def tls_broker(make_broker, tls_files):
    broker = make_broker(extra_config=mosquitto_tls_lines(tls_files.server_cert,
                                                          tls_files.server_key))
    broker.ca = str(tls_files.ca)
    return broker


def mqtt_config(broker, **keys) -> MqttConfig:
    return MqttConfig(host=broker.host, port=broker.port,
                      reconnect={"initial": 0.2, "max": 0.5}, **keys)


def test_tls_with_the_right_ca_connects(tls_broker):
    ok, detail = probe_broker(mqtt_config(tls_broker, ca_file=tls_broker.ca), SITE)
    assert ok, detail
    client = MqttClient(mqtt_config(tls_broker, ca_file=tls_broker.ca), SITE)
    client.start()
    try:
        assert client.ready.wait(10), client.state
        assert client.state == "connected"
    finally:
        client.stop()


def test_tls_with_a_wrong_ca_is_a_clear_failure(tls_broker, tls_files, caplog):
    config = mqtt_config(tls_broker, ca_file=str(tls_files.other_ca))
    ok, detail = probe_broker(config, SITE)
    assert not ok and detail.startswith("TLS failed: ") and "CERTIFICATE_VERIFY_FAILED" in detail
    client = MqttClient(config, SITE)
    client.start()
    try:
        assert wait_until(lambda: client.state.startswith("TLS failed: "))
        assert not client.ready.is_set()
    finally:
        client.stop()
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text


def test_plain_client_on_a_tls_port_never_claims_connected(tls_broker):
    client = MqttClient(mqtt_config(tls_broker), SITE)
    client.start()
    try:
        time.sleep(1.0)
        assert client.state != "connected" and not client.ready.is_set()
    finally:
        client.stop()


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_sd_notify_reaches_a_path_socket_and_an_abstract_one(tmp_path, monkeypatch, kind):
    address = str(tmp_path / "notify") if kind == "path" else f"@steel-test-{os.getpid()}"
    listener = NotifySocket(address)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        notifier = SdNotifier()
        assert notifier.ready("warming up") and notifier.status("two\nlines")
        assert notifier.watchdog() and notifier.stopping()
        assert wait_until(lambda: len(listener.datagrams) == 4)
        assert [text for _, text in listener.datagrams] == [
            "READY=1\nSTATUS=warming up", "STATUS=two lines", "WATCHDOG=1", "STOPPING=1"
        ]
        notifier.close()
    finally:
        listener.close()


def test_without_systemd_notifications_are_no_ops(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = SdNotifier()
    assert not notifier.enabled and not notifier.ready()


def test_watchdog_interval_is_half_the_period_and_only_for_our_pid(tmp_path, monkeypatch):
    listener = NotifySocket(str(tmp_path / "notify"))
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", listener.address)
        monkeypatch.setenv("WATCHDOG_USEC", "200000")
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
        assert not Watchdog(SdNotifier()).enabled  # meant for another process
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
        watchdog = Watchdog(SdNotifier())
        for _ in range(30):  # kicked every 10 ms for 0.3 s: a ping every 0.1 s at most
            watchdog.kick()
            time.sleep(0.01)
        time.sleep(0.05)
        assert 3 <= len(listener.lines("WATCHDOG")) <= 4
    finally:
        listener.close()


def test_a_status_change_before_the_births_puback_is_republished_and_births_keep_order(
    mqtt_broker, mqtt_subscriber
):
    built = []

    def birth() -> dict:
        built.append(len(built))
        return {"n": built[-1]}

    client = MqttClient(mqtt_config(mqtt_broker), SITE, birth)
    on_connect, early = client._client.on_connect, []

    def connect_then_republish(*args) -> None:  # in paho's thread: its PUBACK waits on us
        on_connect(*args)
        early.append((client.ready.is_set(), client.republish_birth()))

    client._client.on_connect = connect_then_republish
    assert not client.republish_birth()  # not connected: the next connect's birth says it
    client.start()
    try:
        assert client.ready.wait(10), client.state
        assert early == [(False, True)]
        threads = [threading.Thread(target=lambda: [client.republish_birth() for _ in range(20)])
                   for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert wait_until(lambda: len(mqtt_subscriber.payloads("/status")) == len(built))
        assert [s["n"] for s in mqtt_subscriber.payloads("/status")] == built  # built order
    finally:
        client.stop()
