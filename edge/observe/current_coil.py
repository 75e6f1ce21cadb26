"""The coil under the camera, as far as the daemon knows: one small object shared by reference.

Coil tracking (L2) or a hand-set `coil` command writes it; Sparkplug and metrics read it. Each
attribute is replaced whole (never mutated in place), so readers need no lock. Until tracking
exists everything is None and the coil metrics are null.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CurrentCoil:
    coil_id: str | None = None
    position_m: float | None = None  # metres from the coil head under the camera
    defects_by_class: dict[str, int] | None = None  # on this coil so far, by class name
    source: str | None = None  # who set it: "tracking", "command", ...
