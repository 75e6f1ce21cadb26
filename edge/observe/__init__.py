"""Observing the daemon: rate-limited logs, current coil, last defect, metrics.

stats and sd_notify are to move here later."""
