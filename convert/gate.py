"""The F1 gate: a candidate engine may not lose more than `max_drop` F1 against the Keras model.

The reference is the Keras model's test F1 recorded in the model card at training time, so the gate
also catches a broken export. The candidate runs, through an `edge.inference.runtime` backend, over
exactly the tiles training evaluated (`train.evaluation.score_split` with the card's settings):
per-class F1 at the card's thresholds plus defect-free F1, for crops and for frames. Beside it:
the FP32 ONNX, and the candidate with thresholds re-selected on its own validation crops.

With the FP32 ONNX scored too, the candidate is judged paired against it on the same samples
(`edge.inference.paired`: flips per class, a bootstrap interval of the F1 difference, a verdict
that says what the test set can and cannot show) instead of by an absolute F1 drop, which on a
few hundred crops or a few dozen frames is within the noise of one or two samples; the ONNX itself
must still match the card's Keras F1 within `max_drop` (a broken export). Without it (the
candidate is the ONNX, or --no-onnx-row) the absolute drop against the card decides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edge.errors import ModelError
from edge.inference.modelcard import ModelCard
from edge.inference.paired import PairedColumn, compare_decisions
from train.evaluation import EvalSettings, metrics_of
from train.metrics import apply_thresholds, best_thresholds
from train.progress import ProgressPredictor

log = logging.getLogger(__name__)

VIEWS = ("crops", "frames")
DEFECT_FREE = "defect-free"
EPSILON = 1e-9  # F1 drops equal to the limit pass

Predictor = Callable[[np.ndarray], np.ndarray]


@dataclass
class Failure:
    view: str
    column: str
    reference: float
    candidate: float
    reason: str = ""  # the paired verdict's, when the paired comparison refused

    @property
    def drop(self) -> float:
        return self.reference - self.candidate

    def __str__(self) -> str:
        text = (f"{self.view} {self.column} F1 {self.reference:.3f} -> {self.candidate:.3f} "
                f"(drop {self.drop:.3f})")
        return f"{text}: {self.reason}" if self.reason else text


@dataclass
class GateReport:
    columns: list[str]  # class names + defect-free
    sizes: dict[str, int]  # samples per view
    rows: dict[str, dict[str, list[float]]]  # view -> row label -> F1 per column
    candidate_label: str
    max_drop: float
    thresholds: list[float]
    reselected_thresholds: list[float]
    failures: list[Failure] = field(default_factory=list)
    paired: dict[str, list[PairedColumn]] | None = None  # view -> candidate vs the FP32 ONNX

    @property
    def passed(self) -> bool:
        return not self.failures

    def failing_columns(self) -> list[str]:
        return sorted({f.column for f in self.failures})

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "max_f1_drop": self.max_drop,
            "reference": "keras test F1 from the model card",
            "candidate": self.candidate_label,
            "columns": self.columns,
            "sizes": self.sizes,
            "rows": self.rows,
            "thresholds": self.thresholds,
            "reselected_thresholds": self.reselected_thresholds,
            "failures": [
                {"view": f.view, "column": f.column, "reference": f.reference,
                 "candidate": f.candidate, "drop": f.drop, "reason": f.reason}
                for f in self.failures
            ],
            "decision": "paired vs onnx fp32" if self.paired else "absolute drop vs the card",
            "paired": {view: [c.to_dict() for c in cols] for view, cols in self.paired.items()}
            if self.paired else None,
        }

    def format_table(self) -> str:
        width = max(10, *(len(c) for c in self.columns))
        label_width = max(len(label) for rows in self.rows.values() for label in rows) + 2
        lines = [f"F1 gate on the test split (max drop {self.max_drop:.3f}, absolute)"]
        for view in VIEWS:
            head = f"{view} (n={self.sizes[view]})"
            lines.append(f"{head:<{label_width}}" + "".join(f" {c:>{width}}" for c in self.columns))
            for label, values in self.rows[view].items():
                lines.append(f"  {label:<{label_width - 2}}"
                             + "".join(f" {v:>{width}.3f}" for v in values))
            lines.append(f"  {'drop':<{label_width - 2}}" + "".join(
                f" {self._drop_cell(view, c):>{width}}" for c in self.columns))
        if self.paired:
            lines += self._paired_lines()
        if self.passed:
            lines.append("verdict: PASS")
        else:
            lines.append(f"verdict: FAIL ({', '.join(self.failing_columns())}): "
                         + "; ".join(str(f) for f in self.failures))
        return "\n".join(lines)

    def _paired_lines(self) -> list[str]:
        lines = ["paired with onnx fp32 (same samples; flips +present/-absent, "
                 "95% bootstrap interval of the F1 difference):"]
        for view, columns in self.paired.items():
            for c in columns:
                mark = "REFUSE" if c.refused else "ok"
                lines.append(f"  {view} {c.column}: +{c.gained}/-{c.lost} of {c.n}, "
                             f"[{c.low:+.3f}, {c.high:+.3f}] {mark}: {c.reason}")
        return lines

    def _drop_cell(self, view: str, column: str) -> str:
        rows = self.rows[view]
        i = self.columns.index(column)
        drop = rows[REFERENCE_ROW][i] - rows[self.candidate_label][i]
        failed = any(f.view == view and f.column == column for f in self.failures)
        return f"{drop:+.3f}" + (" FAIL" if failed else "")


REFERENCE_ROW = "keras (model card)"


def f1_row(table: dict) -> list[float]:
    """Per-class F1 then defect-free F1 of a train.metrics.metrics_table."""
    return [float(c["f1"]) for c in table["classes"]] + [float(table["defect_free"]["f1"])]


def reference_rows(card: ModelCard) -> dict[str, list[float]]:
    test = card.metrics.get("test") or {}
    missing = [v for v in VIEWS if v not in test]
    if missing:
        raise ModelError(f"model card has no test metrics for {', '.join(missing)}; "
                         "re-run train evaluate to record them")
    return {view: f1_row(test[view]) for view in VIEWS}


def eval_settings(card: ModelCard) -> EvalSettings:
    raw = card.data.get("evaluation")
    if not raw:
        raise ModelError("model card has no data.evaluation settings (seed, crops per image)")
    return EvalSettings.from_dict(raw)


def score_test(predict: Predictor, gate_set, desc: str):
    with ProgressPredictor(predict, gate_set.test_tiles(), desc) as progress:
        return gate_set.score_test(progress)


def reselect_thresholds(predict: Predictor, gate_set):
    """Thresholds chosen on the candidate's validation crops, as training chose the card's."""
    with ProgressPredictor(predict, gate_set.validation_tiles(),
                           "gate: validation crops") as progress:
        scored = gate_set.score_validation(progress)
    if scored is None:
        raise ModelError("the run's splits have no validation images")
    thresholds, _ = best_thresholds(scored.labels, scored.scores)
    return thresholds


def run_gate(
    card: ModelCard,
    gate_set,
    candidate: Predictor,
    candidate_label: str,
    max_drop: float,
    onnx_fp32: Predictor | None = None,
) -> GateReport:
    """Score the candidate (and the FP32 ONNX, when given) on `gate_set` (a
    convert.gateset.FolderGateSet or BundledGateSet) and compare with the card."""
    reference = reference_rows(card)
    scored = score_test(candidate, gate_set, f"gate: {candidate_label}")
    measured = metrics_of(scored, card.thresholds)
    reselected = reselect_thresholds(candidate, gate_set)
    with_reselected = metrics_of(scored, reselected)
    onnx_metrics = onnx_scored = None
    if onnx_fp32 is not None:
        onnx_scored = score_test(onnx_fp32, gate_set, "gate: onnx fp32")
        onnx_metrics = metrics_of(onnx_scored, card.thresholds)
    columns = [*card.class_names, DEFECT_FREE]
    rows: dict[str, dict[str, list[float]]] = {}
    for view in VIEWS:
        rows[view] = {REFERENCE_ROW: reference[view]}
        if onnx_metrics is not None:
            rows[view]["onnx fp32"] = f1_row(onnx_metrics[view])
        rows[view][candidate_label] = f1_row(measured[view])
        rows[view][f"{candidate_label}, re-selected thresholds"] = f1_row(with_reselected[view])
    paired = None
    if onnx_scored is None:
        failures = absolute_failures(columns, rows, candidate_label, max_drop)
    else:
        failures = absolute_failures(columns, rows, "onnx fp32", max_drop)  # a broken export
        paired = paired_views(columns, scored, onnx_scored, card.thresholds, max_drop)
        failures += [Failure(view, c.column, c.reference_f1, c.candidate_f1, c.reason)
                     for view, cols in paired.items() for c in cols if c.refused]
    sizes = {view: int(measured[view]["n"]) for view in VIEWS}
    return GateReport(columns, sizes, rows, candidate_label, max_drop, list(card.thresholds),
                      [float(t) for t in reselected], failures, paired)


def absolute_failures(columns, rows, label: str, max_drop: float) -> list[Failure]:
    """Columns where row `label` lost more than max_drop F1 against the card."""
    failures = []
    for view in VIEWS:
        for column, ref, value in zip(columns, rows[view][REFERENCE_ROW], rows[view][label],
                                      strict=True):
            if ref - value > max_drop + EPSILON:
                failures.append(Failure(view, column, ref, value))
    return failures


def paired_views(columns, scored, reference_scored, thresholds, max_drop: float):
    """view -> PairedColumn per column: the candidate's decisions against the reference's."""
    out = {}
    for view in VIEWS:
        cand, ref = scored[view], reference_scored[view]
        out[view] = compare_decisions(
            columns, cand.labels, apply_thresholds(ref.scores, thresholds),
            apply_thresholds(cand.scores, thresholds), max_drop=max_drop + EPSILON,
        )
    return out
