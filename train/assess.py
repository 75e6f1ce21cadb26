"""Evaluate a saved Keras model on its run's splits and write the card, scores and report.

`train fit` (after training) and `train evaluate` go through `keras_predictor` and
`train.evaluation.score_split` with the same settings and batches, so they agree exactly.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import DataError
from edge.inference.modelcard import MODELCARD_FILE, ClassInfo, ModelCard, package_versions
from train import rundir
from train.evaluation import CROPS_PER_IMAGE, EvalSettings, ScoredSet, metrics_of, score_split
from train.metrics import best_thresholds
from train.progress import ProgressPredictor, split_tiles

log = logging.getLogger(__name__)

EVAL_SPLITS = ("validation", "test")
VIEWS = ("crops", "frames")
PREDICT_BATCH = 64


def keras_predictor(model):
    """uint8 tiles [n, 256, 256, 1] -> float32 [n, C] with a Keras model (inference mode)."""

    def predict(tiles: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(tiles), dtype=np.float32)

    return predict


def score_splits(
    predict, folder, splits: dict, settings: EvalSettings, names=EVAL_SPLITS
) -> dict[str, dict[str, ScoredSet]]:
    scored = {}
    for name in names:
        if not splits.get(name):
            raise DataError(f"split {name!r} is empty")
        log.info("evaluating %d %s images", len(splits[name]), name)
        progress = ProgressPredictor(predict, split_tiles(folder, len(splits[name]), settings),
                                     f"evaluating {name}")
        scored[name] = score_split(progress, folder, splits[name], settings, PREDICT_BATCH)
    return scored


def save_scores(path: Path, scored: dict[str, dict[str, ScoredSet]]) -> None:
    arrays = {}
    for split, views in scored.items():
        for view, data in views.items():
            arrays.update(data.arrays(f"{split}_{view}"))
    np.savez_compressed(path, **arrays)


def load_scores(path: Path) -> dict[str, dict[str, ScoredSet]]:
    with np.load(path) as arrays:
        splits = {key.split("_")[0] for key in arrays.files}
        return {
            split: {view: ScoredSet.from_arrays(arrays, f"{split}_{view}") for view in VIEWS}
            for split in splits
        }


def software_versions() -> dict[str, str]:
    packages = ("steel-inspect", "numpy", "tensorflow", "tensorflow-cpu", "keras")
    return {"python": platform.python_version(), **package_versions(*packages)}


def build_card(config, folder, splits, thresholds, metrics, training, settings) -> ModelCard:
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return ModelCard(
        name=config.name or f"steel-{config.arch}",
        arch=config.arch,
        version=f"{config.arch}-{created.replace(':', '').replace('-', '')}",
        created=created,
        classes=[ClassInfo(id=i, name=n) for i, n in zip(folder.class_ids, folder.class_names,
                                                         strict=True)],
        thresholds=thresholds,
        crop_label_rule={
            "min_pixels": config.min_pixels,
            "rule": "a class is present in a tile when >= min_pixels of its mask pixels are inside",
        },
        data={
            "folder": str(Path(config.data).resolve()),
            "sha256": folder.content_hash(),
            "splits_file": rundir.SPLITS_FILE,  # relative to RUN_DIR
            "splits_source": config.splits,
            "class_map": folder.class_map.to_text(),
            "split_sizes": {k: len(v) for k, v in splits.items()},
            "evaluation": settings.to_dict(),
        },
        metrics=metrics,
        training={**_hyper_parameters(config), **training},
        software=software_versions(),
    )


def eval_settings(config) -> EvalSettings:
    return EvalSettings(
        seed=config.eval_seed, crops_per_image=CROPS_PER_IMAGE, min_pixels=config.min_pixels
    )


def finish_run(out: Path, model_path: Path, folder, splits, config, training: dict) -> ModelCard:
    """Evaluate RUN_DIR/model.keras, choose thresholds on validation crops, write every output."""
    from train.models import load_keras_model  # noqa: PLC0415
    from train.report import format_summary, write_report  # noqa: PLC0415

    out = Path(out)
    if not training and (out / MODELCARD_FILE).is_file():
        training = ModelCard.load(out / MODELCARD_FILE).training
    settings = eval_settings(config)
    predict = keras_predictor(load_keras_model(model_path))
    scored = score_splits(predict, folder, splits, settings)
    validation = scored["validation"]["crops"]
    thresholds, _ = best_thresholds(validation.labels, validation.scores)
    metrics = {split: metrics_of(views, thresholds) for split, views in scored.items()}
    card = build_card(config, folder, splits, thresholds, metrics, training, settings)
    card.save(out / MODELCARD_FILE)
    save_scores(out / rundir.SCORES_FILE, scored)
    write_report(out, card, scored, out / rundir.HISTORY_FILE)
    print(format_summary(metrics["test"], card.class_names, "test"))
    return card


def _hyper_parameters(config) -> dict:
    raw = config.to_dict()
    for key in ("data", "out", "verbose"):
        raw.pop(key, None)
    return raw


@dataclass
class EvaluationResult:
    split: str
    metrics: dict  # {"crops": metrics_table, "frames": metrics_table}
    recorded: dict | None  # the card's metrics of the split, when it has them
    max_difference: float | None  # largest |ours - recorded| over every number of the tables
    path: Path
    summary: str


def evaluate_run(run_dir, split: str = "test", data_dir=None, out=None) -> EvaluationResult:
    """Re-evaluate RUN_DIR/model.keras on `split` with the card's thresholds and settings."""
    from train.models import load_keras_model  # noqa: PLC0415
    from train.report import format_summary  # noqa: PLC0415

    run_dir = Path(run_dir)
    card = rundir.load_card(run_dir)
    folder, splits = rundir.open_run_data(card, run_dir, data_dir)
    if not splits.get(split):
        raise DataError(f"split {split!r} of {rundir.splits_path(card, run_dir)} is empty")
    settings = EvalSettings.from_dict(card.data.get("evaluation", {"seed": 0}))
    predict = ProgressPredictor(keras_predictor(load_keras_model(run_dir / rundir.MODEL_FILE)),
                                split_tiles(folder, len(splits[split]), settings),
                                f"evaluating {split}")
    scored = score_split(predict, folder, splits[split], settings, PREDICT_BATCH)
    metrics = metrics_of(scored, card.thresholds)
    recorded = card.metrics.get(split)
    difference = max_difference(metrics, recorded) if recorded else None
    path = Path(out) if out else run_dir / rundir.EVALUATION_DIR / f"{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"split": split, "metrics": metrics, "max_difference_to_card": difference}
    path.write_text(json.dumps(document, indent=2) + "\n")
    summary = format_summary(metrics, card.class_names, split)
    if difference is not None:
        summary += f"\nlargest difference to the numbers in the model card: {difference:.3g}"
    return EvaluationResult(split, metrics, recorded, difference, path, summary)


def max_difference(ours, theirs) -> float:
    """Largest absolute difference between the numbers of two nested metric structures."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        if ours.keys() != theirs.keys():
            return math.inf
        return max((max_difference(ours[k], theirs[k]) for k in ours), default=0.0)
    if isinstance(ours, list | tuple) and isinstance(theirs, list | tuple):
        if len(ours) != len(theirs):
            return math.inf
        return max((max_difference(a, b) for a, b in zip(ours, theirs, strict=True)),
                   default=0.0)
    if isinstance(ours, int | float) and isinstance(theirs, int | float):
        return abs(float(ours) - float(theirs))
    return 0.0 if ours == theirs else math.inf
