"""Observing the daemon: what it shows of itself beside the events (latest frame, ...)."""
