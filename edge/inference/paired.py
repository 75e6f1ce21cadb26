"""Paired comparison of two models' decisions on the same samples: a gate that knows its noise.

A candidate engine and its reference (the FP32 ONNX, equal to Keras within the export's parity)
decide on exactly the same gate samples, so their F1 difference is judged paired: per column, how
many decisions flipped each way, and a bootstrap interval of (candidate F1 - reference F1) that
resamples samples, keeping each sample's pair of decisions together. Identical decisions give
[0, 0] on any set size; one or two flipped crops in hundreds give a narrow interval around 0.

Verdict per column (numpy only, so the line PC can gate too):
- refuse when the drop is significant (the interval lies below 0) and larger than `max_drop`;
- refuse when the set is too small to exclude a large drop (lower end below -`large_drop`);
- otherwise pass, saying which drops the set can exclude and which it cannot see.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 2000
LARGE_DROP = 0.10  # an F1 loss no deployment may risk, however small the gate set


@dataclass(frozen=True)
class PairedColumn:
    column: str
    n: int
    reference_f1: float
    candidate_f1: float
    gained: int  # samples the candidate calls present and the reference absent
    lost: int  # samples the reference calls present and the candidate absent
    low: float  # bootstrap interval of candidate F1 - reference F1
    high: float
    refused: bool
    reason: str

    @property
    def drop(self) -> float:
        return self.reference_f1 - self.candidate_f1

    def to_dict(self) -> dict:
        return {"column": self.column, "n": self.n, "reference_f1": self.reference_f1,
                "candidate_f1": self.candidate_f1, "flips_to_present": self.gained,
                "flips_to_absent": self.lost, "diff_interval": [self.low, self.high],
                "refused": self.refused, "reason": self.reason}


def f1_of_counts(tp, fp, fn):
    """F1 = 2tp / (2tp + fp + fn), 0 without true positives (as train.metrics.binary_metrics)."""
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    denominator = 2 * tp + fp + fn
    return np.where(tp > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def _f1(truth: np.ndarray, predicted: np.ndarray, rows: np.ndarray | None = None):
    """F1 of one binary column; with `rows` [B, n] of resampled indices, B values."""
    tp, fp, fn = truth & predicted, ~truth & predicted, truth & ~predicted
    if rows is None:
        return float(f1_of_counts(tp.sum(), fp.sum(), fn.sum()))
    return f1_of_counts(tp[rows].sum(1), fp[rows].sum(1), fn[rows].sum(1))


def with_defect_free(decisions: np.ndarray) -> np.ndarray:
    """[n, C] multi-hot -> [n, C + 1] with the defect-free column (no class present)."""
    decisions = np.asarray(decisions, dtype=bool)
    return np.concatenate([decisions, ~decisions.any(axis=1, keepdims=True)], axis=1)


def compare_column(
    column: str, truth, reference, candidate, *, max_drop: float, large_drop: float = LARGE_DROP,
    resamples: int = RESAMPLES, seed: int = 0,
) -> PairedColumn:
    truth, reference, candidate = (np.asarray(a, dtype=bool) for a in (truth, reference, candidate))
    n = len(truth)
    ref_f1, cand_f1 = _f1(truth, reference), _f1(truth, candidate)
    gained = int(np.sum(candidate & ~reference))
    lost = int(np.sum(reference & ~candidate))
    if n == 0 or gained + lost == 0:
        low = high = cand_f1 - ref_f1
    else:
        rows = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
        diffs = _f1(truth, candidate, rows) - _f1(truth, reference, rows)
        tail = (1 - CONFIDENCE) / 2
        low, high = (float(v) for v in np.quantile(diffs, [tail, 1 - tail]))
    refused, reason = _verdict(ref_f1, cand_f1, low, high, n, gained + lost, max_drop, large_drop)
    return PairedColumn(column, n, ref_f1, cand_f1, gained, lost, low, high, refused, reason)


def _verdict(ref_f1, cand_f1, low, high, n, flips, max_drop, large_drop) -> tuple[bool, str]:
    pct, drop = f"{CONFIDENCE:.0%}", ref_f1 - cand_f1
    change = f"F1 {ref_f1:.3f} -> {cand_f1:.3f} ({cand_f1 - ref_f1:+.3f})"
    if flips == 0:
        return False, f"identical decisions on all {n} samples"
    if high < 0 and drop > max_drop:
        return True, (f"{change} is a real drop ({pct} interval of the difference "
                      f"[{low:+.3f}, {high:+.3f}] excludes 0) and above the limit {max_drop:g}")
    if low < -large_drop:
        return True, (f"{n} samples cannot exclude a drop of up to {-low:.3f} "
                      f"(> {large_drop:g}) with {flips} flipped decisions: too few to judge")
    seen = "a real drop" if high < 0 else "not distinguishable from noise"
    return False, (f"{change} with {flips} flipped decisions is {seen}; "
                   f"this set excludes drops above {max(-low, 0.0):.3f} ({pct}) "
                   f"and cannot show smaller ones")


def compare_decisions(
    columns: list[str], truth, reference, candidate, *, max_drop: float,
    large_drop: float = LARGE_DROP, resamples: int = RESAMPLES, seed: int = 0,
) -> list[PairedColumn]:
    """One PairedColumn per column of multi-hot [n, C] decisions (+ the defect-free column when
    `columns` has one more name than the arrays have columns)."""
    truth, reference, candidate = (np.asarray(a, dtype=bool) for a in (truth, reference, candidate))
    if len(columns) == truth.shape[1] + 1:
        truth, reference, candidate = (with_defect_free(a) for a in (truth, reference, candidate))
    return [
        compare_column(name, truth[:, c], reference[:, c], candidate[:, c], max_drop=max_drop,
                       large_drop=large_drop, resamples=resamples, seed=seed + c)
        for c, name in enumerate(columns)
    ]
