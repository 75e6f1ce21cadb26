"""Coil tracking: the L2 system says which coil passes the camera and how fast (mqtt, opcua)."""

from __future__ import annotations

from edge.tracking.tracker import CoilChange, Tracker, parse_coil_message

__all__ = ["CoilChange", "Tracker", "parse_coil_message"]
