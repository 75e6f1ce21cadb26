"""What each SCADA command does to the daemon (docs/mqtt.md, "Commands from SCADA").

Threshold overrides set by command are kept in STATE_DIR/thresholds.json and applied again at
start; they sit on top of `[events] thresholds` and the model card's.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from edge.control.server import CommandError
from edge.defects.events import DefectRule

log = logging.getLogger(__name__)

class DaemonCommands:
    def __init__(self, daemon, state_dir: Path) -> None:
        self._daemon = daemon
        self.thresholds_path = Path(state_dir) / "thresholds.json"
        self.overrides: dict[str, float] = {}

    def handlers(self) -> dict:
        return {
            "set-thresholds": self.set_thresholds,
            "clear-thresholds": self.clear_thresholds,
            "coil": self.set_coil,
            "rebirth": self.rebirth,
            "reload-model": self.reload_model,
            "pause": self.pause,
            "resume": self.resume,
        }

    def restore(self) -> None:
        """Apply the overrides saved by earlier set-thresholds commands (if any)."""
        try:
            saved = json.loads(self.thresholds_path.read_text())["thresholds"]
            self._apply(self._validated(saved))
            log.info("thresholds set by command restored from %s: %s", self.thresholds_path,
                     self.overrides)
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, CommandError) as exc:
            log.error("%s: ignored (%s); the configured thresholds apply",
                      self.thresholds_path, exc)

    def set_thresholds(self, body: dict) -> dict:
        given = self._validated(body.get("thresholds"))
        self._apply({**self.overrides, **given})
        self._save()
        return self._effective()

    def clear_thresholds(self, body: dict) -> dict:
        self._apply({})
        self._save()
        return self._effective()

    def set_coil(self, body: dict) -> dict:
        coil_id = body.get("coil_id")
        if coil_id is not None and (not isinstance(coil_id, str) or not 0 < len(coil_id) <= 64):
            raise CommandError("coil_id must be a string of 1..64 characters, or null to clear")
        self._daemon.set_coil_by_hand(coil_id)
        return {"coil_id": coil_id}

    def reload_model(self, body: dict) -> dict:
        """The hot swap (as SIGHUP): model.path is loaded, gated and warmed up in the background;
        the answer says it started, the birth message names the model once it runs."""
        if not self._daemon.reload():
            raise CommandError("a model reload is already running, or the daemon has not started")
        return {"reloading": str(self._daemon.config.model.path)}

    def rebirth(self, body: dict) -> dict:
        node = self._daemon.plant.sparkplug
        if node is None:
            raise CommandError("Sparkplug is off ([sparkplug] enabled = false)")
        if not node.online.is_set():  # births wait for the broker (and the primary host)
            raise CommandError(f"no birth sent: the Sparkplug node is {node.state}")
        node.rebirth()
        return {"bdSeq": node.bdseq}

    def pause(self, body: dict) -> dict:
        """Stop inspecting (frames are still acquired and counted as paused); idempotent."""
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 200):
            raise CommandError("reason must be a string of at most 200 characters")
        return {"inspection": self._daemon.set_paused(True, _by(body), reason)}

    def resume(self, body: dict) -> dict:
        return {"inspection": self._daemon.set_paused(False, _by(body), None)}

    def _validated(self, thresholds) -> dict[str, float]:
        names = self._daemon.model.card.class_names
        if not isinstance(thresholds, dict) or not thresholds:
            raise CommandError('thresholds must be an object {"CLASS": 0..1, ...}')
        for name, value in thresholds.items():
            if name not in names:
                raise CommandError(f"thresholds.{name}: unknown class; the model's classes are "
                                   + ", ".join(names))
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or not 0 < value < 1:
                raise CommandError(f"thresholds.{name}: must be a number between 0 and 1 "
                                   f"(got {value!r})")
        return {name: float(value) for name, value in thresholds.items()}

    def _apply(self, overrides: dict[str, float]) -> None:
        daemon = self._daemon
        events = daemon.config.events
        merged = {**events.thresholds, **overrides}
        rule = DefectRule(daemon.model.card, events.model_copy(update={"thresholds": merged}))
        daemon.use_rule(rule)  # attribute swaps: the next frame uses it
        self.overrides = dict(overrides)
        log.info("thresholds now %s", self._effective()["thresholds"])

    def _effective(self) -> dict:
        rule = self._daemon.pipeline.processor.rule
        return {"thresholds": dict(zip(rule.class_names, rule.thresholds.tolist(), strict=True)),
                "set_by_command": dict(self.overrides)}

    def _save(self) -> None:
        try:
            self.thresholds_path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.thresholds_path.with_suffix(".tmp")
            temporary.write_text(json.dumps({"thresholds": self.overrides}, allow_nan=False))
            os.replace(temporary, self.thresholds_path)
        except OSError as exc:
            raise CommandError(f"applied, but not saved for restarts: {exc}") from None


def _by(body: dict) -> str | None:
    by = body.get("by")
    return by[:64] if isinstance(by, str) else None
