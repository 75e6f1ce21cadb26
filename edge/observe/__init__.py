"""Observing the daemon: rate-limited logs (stats, metrics and sd_notify are to move here)."""
