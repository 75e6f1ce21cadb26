"""Delivery: outbox -> publisher -> MQTT (JSON topics, Sparkplug B).

The older delivery files in edge/ move here later."""
