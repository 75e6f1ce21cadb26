"""Admission: may this model run on the line? Only one whose gate passed, unless commissioning.

`convert build-engine` gates every engine on the test split and records the verdict in the
manifest (`gate.passed`); a refused engine is published as PATH.rejected with `gate.passed: false`.
A bare ONNX (no manifest) was never gated at all. Both are refused here with one line saying how
to fix it. `model.allow_ungated = true` lets commissioning run such a model anyway; the reason is
then kept (`Admission.warning`) so the log, the birth message and `edge check` can say it loudly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ModelError

log = logging.getLogger(__name__)

GATE_HINT = (
    "build a gated engine with `convert build-engine` (or install a package with "
    "`edge model install`), or set model.allow_ungated = true to commission without a gate"
)


@dataclass(frozen=True)
class Admission:
    """The gate verdict a model runs under: passed, or ungated with the reason (a warning)."""

    passed: bool
    warning: str | None = None

    def as_status(self) -> dict:
        """The birth message's `gate` section."""
        out: dict = {"passed": self.passed}
        if self.warning is not None:
            out["warning"] = self.warning
        return out


def gate_problem(path: Path, manifest: dict | None) -> str | None:
    """Why `path` has no passed gate (None: its manifest records a passed gate)."""
    if manifest is None:
        return f"{path}: no manifest {path.name}.json, so this model was never gated"
    gate = manifest.get("gate")
    if not isinstance(gate, dict) or "passed" not in gate:
        return f"{path}: its manifest records no gate verdict"
    if gate["passed"] is not True:
        return f"{path}: its manifest says the gate did not pass ({refusal_summary(gate)})"
    return None


def refusal_summary(gate: dict) -> str:
    """The failures of a gate verdict (GateReport.to_dict()), in a few words."""
    failures = [f for f in gate.get("failures") or [] if isinstance(f, dict)]
    if not failures:
        return "refused"
    parts = [f"{f.get('view', '?')} {f.get('column', '?')} F1 {_num(f.get('reference'))} -> "
             f"{_num(f.get('candidate'))}" for f in failures[:3]]
    more = f" and {len(failures) - 3} more" if len(failures) > 3 else ""
    return "refused: " + "; ".join(parts) + more


def _num(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "?"


def admit(path: Path, manifest: dict | None, allow_ungated: bool) -> Admission:
    """Admission for a model, or ModelError when its gate did not pass and that is not allowed."""
    problem = gate_problem(Path(path), manifest)
    if problem is None:
        return Admission(passed=True)
    if not allow_ungated:
        raise ModelError(f"{problem}; {GATE_HINT}")
    warning = f"UNGATED MODEL (model.allow_ungated = true): {problem}; not for production"
    log.warning("%s", warning)
    return Admission(passed=False, warning=warning)
