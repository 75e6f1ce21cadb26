"""Layout of a training run folder (RUN_DIR) and re-opening its data, numpy only.

RUN_DIR/
  model.keras          the best model (lowest validation loss), without optimizer state
  model.onnx           written by `convert export-onnx` (raw uint8 pixels in, probabilities out)
  modelcard.json       edge.inference.modelcard.ModelCard: classes, thresholds, metrics, data,
  training
  splits.json          the train/validation/test image ids used (copied or generated)
  data_files.json      train.csv's sha256 and every image's byte size (names what changed later)
  fit_config.json      every `train fit` option (used by --resume)
  fit_state.json       last finished epoch and best validation loss (used by --resume)
  history.csv          Keras CSVLogger: loss and binary accuracy per epoch
  scores.npz           labels and scores of validation/test crops and frames
  report.md/.json      the paper's Tables 2 and 3 on the test split; PNG figures beside
  checkpoints/         best.keras and last.keras (with optimizer state)
  tensorboard/         TensorBoard logs
"""

from __future__ import annotations

import json
from pathlib import Path

from edge.archive.files import write_atomic
from edge.errors import DataError
from edge.inference.modelcard import MODELCARD_FILE, ModelCard

MODEL_FILE = "model.keras"
ONNX_FILE = "model.onnx"
SPLITS_FILE = "splits.json"
DATA_FILES = "data_files.json"
EXPLAIN_DIR = "explain"
CONFIG_FILE = "fit_config.json"
STATE_FILE = "fit_state.json"
HISTORY_FILE = "history.csv"
SCORES_FILE = "scores.npz"
CHECKPOINT_DIR = "checkpoints"
BEST_CHECKPOINT = "best.keras"
LAST_CHECKPOINT = "last.keras"
TENSORBOARD_DIR = "tensorboard"
EVALUATION_DIR = "evaluation"


def load_card(run_dir: Path) -> ModelCard:
    return ModelCard.load(Path(run_dir) / MODELCARD_FILE)


def data_folder(card: ModelCard, data_dir: Path | None = None) -> Path | None:
    """`data_dir`, else the card's data folder, else None (a card written without one)."""
    if data_dir is not None:
        return Path(data_dir)
    recorded = card.data.get("folder")
    return Path(recorded) if recorded else None


def open_run_data(card: ModelCard, run_dir: Path, data_dir: Path | None = None):
    """(SeverstalFolder, splits dict) a run was trained and evaluated on.

    `data_dir` overrides the folder recorded in the card (the data moved); the content hash must
    still match, so the numbers stay comparable.
    """
    from train.data.classmap import ClassMap  # noqa: PLC0415
    from train.data.folder import SeverstalFolder  # noqa: PLC0415
    from train.data.splits import read_splits  # noqa: PLC0415

    data = card.data
    folder_path = data_folder(card, data_dir)
    if folder_path is None:
        raise DataError(
            f"{run_dir}: the model card names no data folder (data.folder); pass --data"
        )
    if not data.get("class_map"):
        raise DataError(f"{run_dir}: the model card has no data.class_map to read the data with")
    folder = SeverstalFolder.open(folder_path, ClassMap.parse(data["class_map"]))
    recorded = data.get("sha256")
    if recorded and folder.content_hash() != recorded:
        raise DataError(
            f"{folder_path}: data changed since training (sha256 {folder.content_hash()[:12]}, "
            f"card has {recorded[:12]}){changed_files(Path(run_dir), folder)}"
        )
    return folder, read_splits(splits_path(card, run_dir))


def write_data_files(run_dir: Path, folder) -> None:
    """RUN_DIR/data_files.json: the listing the content hash was computed from."""
    write_json(Path(run_dir) / DATA_FILES, folder.file_listing())


def write_json(path: Path, document, indent: int | None = None) -> None:
    """Write a JSON file whole or not at all (temp file + rename): the chief rewrites RUN_DIR's
    files on every start, including --resume, while another worker may be reading them."""
    write_atomic(Path(path), (json.dumps(document, indent=indent) + "\n").encode())


def changed_files(run_dir: Path, folder) -> str:
    """': added x.png; size changed a.jpg' against RUN_DIR/data_files.json ('' without it)."""
    from train.data.folder import CSV_NAME, IMAGES_DIR  # noqa: PLC0415
    from train.data.problems import name_some  # noqa: PLC0415

    path = run_dir / DATA_FILES
    if not path.is_file():
        return ""
    then, now = json.loads(path.read_text()), folder.file_listing()
    parts = [f"{CSV_NAME} changed"] if then.get(CSV_NAME) != now[CSV_NAME] else []
    old, new = then.get(IMAGES_DIR, {}), now[IMAGES_DIR]
    for label, names in (
        ("added", sorted(set(new) - set(old))),
        ("removed", sorted(set(old) - set(new))),
        ("size changed", sorted(n for n in set(old) & set(new) if old[n] != new[n])),
    ):
        if names:
            parts.append(f"{label} {name_some(names, 5)}")
    return ": " + "; ".join(parts) if parts else ""


def splits_path(card: ModelCard, run_dir: Path) -> Path:
    """The card's splits file; a relative path is relative to RUN_DIR."""
    return Path(run_dir) / card.data.get("splits_file", SPLITS_FILE)
