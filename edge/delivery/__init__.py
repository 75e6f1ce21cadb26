"""Delivery: outbox -> publisher -> MQTT (new files here; the existing ones move later)."""
