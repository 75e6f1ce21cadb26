"""Observation: what the daemon is doing, for Sparkplug, Prometheus and people."""
