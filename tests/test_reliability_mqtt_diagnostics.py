"""Diagnostics that pointed the wrong way: a hung broker, a duplicate client id, stale wills."""

from __future__ import annotations

import logging
import socket

from edge.config import MqttConfig, SiteConfig
from edge.delivery.mqtt import MqttClient, ShortLivedConnections
from tests.fixtures.broker import Subscriber, wait_until
from tests.fixtures.edge_daemon import validate_messages

SITE = SiteConfig(line="L1", camera="cam1")


def mqtt_config(host, port, **options) -> MqttConfig:
    return MqttConfig(host=host, port=port, reconnect={"initial": 0.2, "max": 0.5}, **options)


def test_a_broker_that_takes_the_connection_and_never_answers_is_not_a_certificate_problem(
    caplog,
):
    hung = socket.socket()  # the kernel accepts connections; nothing ever answers: a hung broker
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)
    client = MqttClient(mqtt_config("127.0.0.1", hung.getsockname()[1], keepalive=5), SITE)
    caplog.set_level(logging.WARNING, logger="edge.delivery.mqtt")
    try:
        client.start()
        assert wait_until(lambda: client.state.startswith("no CONNACK"), timeout=15), client.state
    finally:
        client.stop()
        hung.close()
    assert "did not answer within keepalive (5 s); is it hung or overloaded?" in caplog.text
    assert "cert_file" not in caplog.text


def test_two_daemons_with_one_client_id_are_told_so(mqtt_broker, caplog):
    config = mqtt_config(mqtt_broker.host, mqtt_broker.port, client_id="line1-cam1")
    first, second = MqttClient(config, SITE), MqttClient(config, SITE)
    caplog.set_level(logging.ERROR, logger="edge.delivery.mqtt")
    try:
        first.start()
        assert wait_until(first.ready.is_set)
        second.start()
        assert wait_until(lambda: "another client uses client id line1-cam1" in caplog.text,
                          timeout=15), (first.state, second.state)
    finally:
        first.stop()
        second.stop()
    assert "Give each daemon its own mqtt.client_id" in caplog.text


BIRTH = {"model": {"name": "m", "version": "1", "sha256": "0" * 64}, "backend": "onnxruntime",
         "software": {"steel-inspect": "test"}}


def test_birth_and_will_carry_the_connection_id_and_time_so_stale_wills_can_be_told(mqtt_broker):
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, "steel-inspect/#")
    client = MqttClient(mqtt_config(mqtt_broker.host, mqtt_broker.port), SITE, birth=BIRTH)
    try:
        client.start()
        assert wait_until(lambda: len(subscriber.payloads("/status")) == 1)
        client._client.socket().shutdown(socket.SHUT_RDWR)  # the connection dies: the will
        assert wait_until(lambda: len(subscriber.payloads("/status")) >= 3, timeout=15)
    finally:
        client.stop()
    statuses = [p for p in subscriber.payloads("/status") if p["state"] != "stopped"]
    validate_messages(subscriber.messages())
    subscriber.close()
    first, will, second = statuses[:3]
    assert [first["state"], second["state"]] == ["online", "online"]
    assert will["state"] == "offline" and will["connection"] == first["connection"]
    assert second["connection"] != will["connection"]
    assert second["connection_ts"] >= will["connection_ts"]  # the will is the older one


def test_short_connections_broken_by_refused_attempts_are_a_restarting_broker_not_a_twin():
    twin, restarts = ShortLivedConnections(), ShortLivedConnections()
    assert [twin.add(0.1) for _ in range(3)] == [False, False, True]
    for _ in range(5):  # a broker restart storm: every reconnect is refused at least once
        assert not restarts.add(0.1)
        restarts.clear()  # what a failed connection attempt does
    assert not twin.add(30.0)  # a connection that lived normally ends the pattern
