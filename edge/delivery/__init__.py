"""Delivery: outbox -> MQTT (the JSON topics today in edge/, Sparkplug B here)."""
