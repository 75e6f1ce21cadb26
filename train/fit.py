"""`train fit`: train a model on random crops with focal loss and write RUN_DIR.

After training, the best checkpoint (lowest validation loss) becomes RUN_DIR/model.keras, which
is reloaded and evaluated by `train.assess` exactly as `train evaluate` does later.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import math
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from edge.errors import ConfigError, DataError, ModelError
from train import distribute, rundir
from train.data.crops import DEFAULT_MIN_PIXELS
from train.data.splits import SPLIT_NAMES
from train.evaluation import EvalSettings
from train.losses import DEFAULT_ALPHA, DEFAULT_GAMMA

log = logging.getLogger(__name__)



@dataclass
class FitConfig:
    data: str
    out: str
    arch: str = "resnet152"
    weights: str = "none"
    epochs: int = 30
    batch_size: int = 16
    steps_per_epoch: int | None = None  # None: one crop per training image per epoch
    lr: float = 1e-3
    focal_alpha: float | None = DEFAULT_ALPHA
    focal_gamma: float = DEFAULT_GAMMA
    oversample: float = 0.0
    defect_focus: float = 0.0
    mixed_precision: bool = False
    min_pixels: int = DEFAULT_MIN_PIXELS
    class_map: str | None = None
    splits: str | None = None
    seed: int = 0
    eval_seed: int = 0
    val_crops: int = 4
    patience: int = 6
    lr_patience: int = 2
    verbose: int = 1
    name: str | None = None
    strategy: str = "auto"  # train.distribute.STRATEGIES
    recipe_options: list[str] | None = None  # options taken from the architecture's recipe

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "steps_per_epoch": self.steps_per_epoch is None or self.steps_per_epoch >= 1,
            "lr": self.lr > 0,
            "val_crops": self.val_crops >= 1,
            "min_pixels": self.min_pixels >= 1,
            "oversample": self.oversample >= 0,
            "defect_focus": 0.0 <= self.defect_focus <= 1.0,
            "focal_alpha": self.focal_alpha is None or 0.0 < self.focal_alpha < 1.0,
            "focal_gamma": self.focal_gamma >= 0,
            "patience": self.patience >= 1,
            "lr_patience": self.lr_patience >= 1,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"--{key.replace('_', '-')} {getattr(self, key)} is out of range")

    @classmethod
    def from_dict(cls, raw: dict) -> FitConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})

    def to_dict(self) -> dict:
        return asdict(self)


def configure_tensorflow(threads: int = 0) -> None:
    """Limit TensorFlow's CPU threads (0 = its default); call before any TF work."""
    if not threads:
        return
    import tensorflow as tf  # noqa: PLC0415

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    except RuntimeError:  # TensorFlow already initialised in this process (tests)
        log.debug("TensorFlow threads already fixed; --threads %d ignored", threads)


def resolve_config(config: FitConfig, resume: bool, overrides: dict,
                   writes_out: bool = True) -> tuple[FitConfig, dict]:
    """The effective config and the resume state ({} for a fresh run). A process that will not
    write RUN_DIR (a non-chief worker) does not mind what is already in it."""
    out = Path(config.out)
    if not resume:
        if writes_out and out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ConfigError(f"{out}: run folder is not empty; use --resume or another --out")
        return config, {}
    config_path, state_path = out / rundir.CONFIG_FILE, out / rundir.STATE_FILE
    if not config_path.is_file() or not state_path.is_file():
        raise ConfigError(f"{out}: nothing to resume ({rundir.STATE_FILE} not found)")
    stored = json.loads(config_path.read_text())
    stored.update({k: v for k, v in overrides.items() if v is not None})
    stored["out"] = str(out)  # the folder may have moved since
    return FitConfig.from_dict(stored), json.loads(state_path.read_text())


def run_strategy(config: FitConfig, resume: bool, overrides: dict | None = None) -> str:
    """The --strategy the run trains with: a resumed run keeps the one stored in its
    fit_config.json unless --strategy is given again (`config.strategy` is then the default)."""
    if not resume or "strategy" in (overrides or {}):
        return config.strategy
    try:
        stored = json.loads((Path(config.out) / rundir.CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return config.strategy  # resolve_config says what is wrong with the run folder
    return stored.get("strategy", "auto") if isinstance(stored, dict) else config.strategy


def open_data(config: FitConfig):
    from train.data.classmap import ClassMap  # noqa: PLC0415
    from train.data.folder import SeverstalFolder  # noqa: PLC0415
    from train.data.problems import Problems  # noqa: PLC0415
    from train.data.trainable import check_trainable, dropped_lines  # noqa: PLC0415

    class_map = ClassMap.parse(config.class_map) if config.class_map else None
    folder = SeverstalFolder.open(Path(config.data), class_map)
    check_trainable(folder, Problems(strict=True))
    for line in dropped_lines(folder.summary()):
        log.info("%s", line)
    return folder


def load_or_make_splits(config: FitConfig, folder, read_own: bool = True) -> dict[str, list[str]]:
    """Splits from --splits, from the run (resume; `read_own`) or made from the seed; checked."""
    from train.data.splits import make_splits, read_splits, read_splits_file  # noqa: PLC0415

    own = Path(config.out) / rundir.SPLITS_FILE
    own = own if read_own and own.is_file() else None
    source = Path(config.splits) if config.splits else own
    if source is None:
        splits = make_splits(folder, config.seed)
    else:
        splits = read_splits(source, folder.content_hash())
        check_class_map(source, read_splits_file(source)[1], folder)
    check_splits(splits, folder, config.data)
    return splits


def check_class_map(path: Path, meta: dict, folder) -> None:
    """A splits file made under one class map must not train under another."""
    recorded, used = meta.get("class_map"), folder.class_map.to_text()
    if recorded is not None and recorded != used:
        raise DataError(
            f"{path}: made with class map {recorded}, but this run reads the data with {used}; "
            f"pass --class-map {recorded}"
        )


def save_splits(config: FitConfig, folder, splits) -> None:
    """RUN_DIR/splits.json: the run's own copy, whatever the source."""
    from train.data.splits import write_splits  # noqa: PLC0415

    meta = {"data_hash": folder.content_hash(), "class_map": folder.class_map.to_text(),
            "seed": config.seed, "source": config.splits}
    write_splits(Path(config.out) / rundir.SPLITS_FILE, splits, meta)


def check_splits(splits: dict, folder, data) -> None:
    known = set(folder.image_ids)
    for name in SPLIT_NAMES:
        ids = splits.get(name, [])
        if not ids:
            raise DataError(f"split {name!r} is empty; need images in train, validation and test")
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise DataError(f"split {name!r}: image {unknown[0]} is not in {data}")


def default_steps(config: FitConfig, n_train: int) -> int:
    return config.steps_per_epoch or max(1, math.ceil(n_train / config.batch_size))


def build_or_resume_model(config: FitConfig, num_classes: int, resume: bool):
    """A compiled model: new (from --weights) or, resuming, the last checkpoint and optimizer."""
    import keras  # noqa: PLC0415

    from train.losses import focal_loss  # noqa: PLC0415
    from train.models import build_model, load_keras_model  # noqa: PLC0415

    if resume:
        last = Path(config.out) / rundir.CHECKPOINT_DIR / rundir.LAST_CHECKPOINT
        return load_keras_model(last, compile=True)
    model = build_model(config.arch, num_classes, config.weights)
    if model.output_shape[-1] != num_classes:
        raise ModelError(f"model has {model.output_shape[-1]} outputs for {num_classes} classes")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.lr),
        loss=focal_loss(config.focal_alpha, config.focal_gamma),
        metrics=[keras.metrics.BinaryAccuracy(name="binary_accuracy")],
    )
    return model


def array_dataset(tiles, labels, batch_size: int):
    """Batches of in-memory arrays without embedding them in the graph (no 2 GiB limit)."""
    import tensorflow as tf  # noqa: PLC0415

    def batches():
        for start in range(0, len(tiles), batch_size):
            yield tiles[start : start + batch_size], labels[start : start + batch_size]

    spec = (
        tf.TensorSpec([None, *tiles.shape[1:]], tf.uint8),
        tf.TensorSpec([None, labels.shape[1]], tf.float32),
    )
    dataset = tf.data.Dataset.from_generator(batches, output_signature=spec)
    n_batches = math.ceil(len(tiles) / batch_size)
    return dataset.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(2)


def make_callbacks(config: FitConfig, state: dict, out: Path):
    """Checkpoints, state, history and TensorBoard logs written to `out` (RUN_DIR, or a
    non-chief worker's temporary folder)."""
    import keras  # noqa: PLC0415

    from train.callbacks import EpochCSVLogger, FitStateWriter, TrainingEta  # noqa: PLC0415

    checkpoints = out / rundir.CHECKPOINT_DIR
    checkpoints.mkdir(exist_ok=True)
    best_loss = state.get("best_val_loss")
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            checkpoints / rundir.BEST_CHECKPOINT, monitor="val_loss", save_best_only=True,
            initial_value_threshold=best_loss,
        ),
        keras.callbacks.ModelCheckpoint(checkpoints / rundir.LAST_CHECKPOINT),
        FitStateWriter(out / rundir.STATE_FILE, best_loss, state.get("best_epoch")),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=config.lr_patience, min_lr=1e-6
        ),
        EpochCSVLogger(out / rundir.HISTORY_FILE, append=bool(state)),
        TrainingEta(config.epochs),
    ]
    if importlib.util.find_spec("tensorboard") is None:
        log.warning("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
    else:
        callbacks.append(
            keras.callbacks.TensorBoard(out / rundir.TENSORBOARD_DIR, write_graph=False)
        )
    return callbacks


def train(config: FitConfig, state: dict, folder, splits, role: distribute.WorkerRole,
          work_dir: Path | None = None) -> dict:
    """Run model.fit as `role`, writing checkpoints and logs to `work_dir` (default RUN_DIR);
    returns what the model card records under `training`."""
    import keras  # noqa: PLC0415

    from train.evaluation import crop_eval_set  # noqa: PLC0415
    from train.pipeline import CropSource, PipelineConfig, train_dataset  # noqa: PLC0415

    strategy = distribute.make_strategy(role)  # first: before any other TensorFlow work
    if role.multiworker:
        distribute.check_batch(role, config.batch_size, strategy.num_replicas_in_sync)
    work_dir = Path(work_dir or config.out)
    keras.utils.set_random_seed(config.seed)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    initial_epoch = int(state.get("epoch", 0))
    pipeline_config = PipelineConfig(
        batch_size=config.batch_size, min_pixels=config.min_pixels,
        oversample=config.oversample, defect_focus=config.defect_focus, seed=config.seed,
    )
    source = CropSource(folder, splits["train"], pipeline_config)
    train_data = train_dataset(source, pipeline_config, stream=initial_epoch)
    val_settings = EvalSettings(seed=config.eval_seed, crops_per_image=config.val_crops,
                                min_pixels=config.min_pixels)
    val_tiles, val_labels = crop_eval_set(folder, splits["validation"], val_settings)
    val_data = array_dataset(val_tiles, val_labels.astype("float32"), config.batch_size)
    if role.multiworker:
        train_data = distribute.shard_by_data(train_data)
        val_data = distribute.shard_by_data(val_data)
    with strategy.scope():
        model = build_or_resume_model(config, len(folder.class_ids), bool(state))
        if role.multiworker:
            distribute.adapt_for_multiworker(model, train_data, role.num_workers)
    steps = default_steps(config, len(splits["train"]))
    log.info("training %s: %d epochs x %d steps of %d crops", config.arch, config.epochs, steps,
             config.batch_size)
    history = model.fit(
        train_data, epochs=config.epochs, initial_epoch=initial_epoch, steps_per_epoch=steps,
        validation_data=val_data, callbacks=make_callbacks(config, state, work_dir),
        verbose=config.verbose if role.is_chief else 0, shuffle=False,
    )
    final_state = json.loads((work_dir / rundir.STATE_FILE).read_text())
    return {
        "epochs_run": final_state["epoch"],
        "best_epoch": final_state.get("best_epoch"),
        "best_val_loss": final_state.get("best_val_loss"),
        "stopped_early": final_state["epoch"] < config.epochs,
        "steps_per_epoch": steps,
        "replicas": strategy.num_replicas_in_sync,
        "workers": role.num_workers,
        "resumed_from_epoch": initial_epoch or None,
        "last_epoch_logs": {k: float(v[-1]) for k, v in history.history.items() if v},
    }


def export_best_model(config: FitConfig) -> Path:
    """Copy the best checkpoint, without optimizer state, to RUN_DIR/model.keras."""
    from train.models import load_keras_model  # noqa: PLC0415

    out = Path(config.out)
    checkpoints = out / rundir.CHECKPOINT_DIR
    best = checkpoints / rundir.BEST_CHECKPOINT
    if not best.is_file():
        best = checkpoints / rundir.LAST_CHECKPOINT
    model = load_keras_model(best)
    target = out / rundir.MODEL_FILE
    model.save(target)
    log.info("saved %s (from %s)", target, best.name)
    return target


def fit(config: FitConfig, resume: bool = False, overrides: dict | None = None) -> Path | None:
    """Train (or resume) and write the complete RUN_DIR; returns its path (None in a non-chief
    worker of --strategy multiworker, which writes nothing there)."""
    from train import assess  # noqa: PLC0415

    role = distribute.worker_role(run_strategy(config, resume, overrides))
    config, state = resolve_config(config, resume, overrides or {}, writes_out=role.is_chief)
    distribute.check_batch(role, config.batch_size)
    if not role.is_chief:
        return train_as_worker(config, state, role)
    folder = open_data(config)
    splits = load_or_make_splits(config, folder)  # bad data fails before RUN_DIR is created
    out = Path(config.out)
    existed = out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        save_splits(config, folder, splits)
        rundir.write_data_files(out, folder)
        rundir.write_json(out / rundir.CONFIG_FILE, config.to_dict(), indent=2)
        training = {}
        if int(state.get("epoch", 0)) < config.epochs:
            training = train(config, state, folder, splits, role)
        else:
            log.info("all %d epochs already done; re-evaluating", config.epochs)
    except BaseException:
        if not state and not (out / rundir.STATE_FILE).is_file():
            remove_failed_start(out, existed)
        raise
    model_path = export_best_model(config)
    assess.finish_run(out, model_path, folder, splits, config, training)
    return out


def train_as_worker(config: FitConfig, state: dict, role) -> None:
    """A non-chief worker: the same data, splits and training, everything it writes in a
    temporary folder that is removed; RUN_DIR is the chief's."""
    folder = open_data(config)
    # a fresh run makes the splits from the seed, as the chief does, rather than read the
    # chief's splits.json while it may still be written
    splits = load_or_make_splits(config, folder, read_own=bool(state))
    if int(state.get("epoch", 0)) >= config.epochs:
        log.info("all %d epochs already done; nothing to train", config.epochs)
        return None
    work_dir = worker_work_dir(config.out, role)
    try:
        train(config, state, folder, splits, role, work_dir=work_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    log.info("%s: training done; the chief writes %s", role.describe(), config.out)
    return None


def worker_work_dir(out: str, role) -> Path:
    """A non-chief worker's scratch folder (checkpoints: GBs for ResNet152), emptied first.

    Its name is fixed by the run and the task, not random, so that the next start of the same
    worker removes what a killed one (SIGKILL, power loss: no `finally`) left behind.
    """
    run = hashlib.sha256(str(Path(out).resolve()).encode()).hexdigest()[:12]
    work_dir = Path(tempfile.gettempdir()) / f"steel-fit-{run}-{role.task_type}{role.task_index}"
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    return work_dir


def remove_failed_start(out: Path, existed: bool) -> None:
    """Undo a fresh run that failed before its first epoch, so the same command can be rerun.

    The folder was new or empty (resolve_config refuses anything else), so all of it is ours.
    """
    if not existed:
        shutil.rmtree(out, ignore_errors=True)
        return
    for entry in out.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    log.info("removed what the failed start wrote to %s", out)
