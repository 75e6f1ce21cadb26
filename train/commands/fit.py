"""`train fit`: train a model on a Severstal-format folder and write RUN_DIR (docs/training.md)."""

from __future__ import annotations

import argparse
import gc
import json
import shlex
import sys
from pathlib import Path

from edge.errors import ConfigError

INTERRUPTED = object()  # fit's result when Ctrl-C stopped it
RECIPE = "default: the architecture's recipe (`train models`)"

# option -> (type, help); the defaults of recipe options come from the architecture's entry in
# the model registry, every other default from train.fit.FitConfig, so --resume can tell which
# options were given on the command line.
OPTIONS = {
    "data": (str, "Severstal-format folder (train_images/ + train.csv)"),
    "arch": (str, "architecture: {choices} (default resnet152, the paper's)"),
    "weights": (str, "none (default), imagenet, or a Keras checkpoint of the same architecture"),
    "epochs": (int, f"number of epochs ({RECIPE})"),
    "batch_size": (int, f"crops per batch, global over GPUs ({RECIPE})"),
    "steps_per_epoch": (int, f"batches per epoch; auto = training images / batch ({RECIPE})"),
    "lr": (float, f"Adam learning rate; 1e-4 suits --weights imagenet ({RECIPE})"),
    "focal_alpha": (str, f"focal loss alpha in (0, 1), or 'none' for no class balancing "
                         f"({RECIPE})"),
    "focal_gamma": (float, f"focal loss gamma >= 0 ({RECIPE})"),
    "oversample": (float, f"oversample images of rare classes by (n_max/n_c)**X ({RECIPE})"),
    "defect_focus": (float, "chance that a crop of a defective image is placed over one of its "
                            f"defects; 0 = uniform random crops, as in the paper ({RECIPE})"),
    "min_pixels": (int, "crop-label rule: mask pixels inside a tile to call a class present "
                        "(default 32)"),
    "class_map": (str, "Severstal id:project id pairs, e.g. 1:1,2:0,3:2,4:3 (default identity)"),
    "splits": (str, "splits JSON from `train split` (default: made from --seed)"),
    "seed": (int, "seed of weights, crops and splits (default 0)"),
    "eval_seed": (int, "seed of the evaluation crops (default 0)"),
    "val_crops": (int, "random crops per validation image for the validation loss (default 4)"),
    "patience": (int, "early stopping: epochs without a better validation loss (default 6)"),
    "lr_patience": (int, "halve the learning rate after this many flat epochs (default 2)"),
    "name": (str, "model name in the card (default steel-ARCH)"),
    "strategy": (str, "auto (default): MirroredStrategy over this machine's GPUs when it has "
                      "several; multiworker: MultiWorkerMirroredStrategy over the machines in "
                      "TF_CONFIG, the chief writes RUN_DIR (docs/training.md)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from train.models import list_models  # noqa: PLC0415
    from train.models.listing import recipe_lines  # noqa: PLC0415

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "default recipes (options not given):\n" + "\n".join(recipe_lines())
    parser.add_argument("--out", required=True, help="run folder to create (or to --resume)")
    for option, (kind, help_text) in OPTIONS.items():
        parser.add_argument("--" + option.replace("_", "-"), type=kind, default=None,
                            help=help_text.replace("{choices}", ", ".join(list_models())))
    parser.add_argument("--mixed-precision", action="store_true", default=None,
                        help="float16 compute on GPUs (the output stays float32)")
    parser.add_argument("--resume", action="store_true",
                        help="continue RUN_DIR from its last epoch (other options: overrides)")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow CPU threads (0: all)")
    parser.add_argument("--quiet", action="store_true", help="one log line per epoch, no bars")


def given_options(args) -> dict:
    given = {k: getattr(args, k) for k in OPTIONS if getattr(args, k) is not None}
    if args.mixed_precision:
        given["mixed_precision"] = True
    # Keras progress bars only on a terminal: in a log file they are lines of ANSI escapes.
    given["verbose"] = 2 if args.quiet or not sys.stdout.isatty() else 1
    if "focal_alpha" in given:
        given["focal_alpha"] = parse_alpha(given["focal_alpha"])
    return given


def with_recipe(given: dict, model_entry, default_arch: str, args) -> dict:
    """The fit options: given ones over the architecture's recipe (a fresh run only: a resumed
    run keeps the values stored in its fit_config.json)."""
    base = {"data": given.get("data", ""), "out": args.out}
    entry = model_entry(given.get("arch", default_arch))
    if args.resume:
        return {**base, **given}
    recipe = {k: v for k, v in entry.recipe.to_dict().items() if k not in given}
    return {**base, **recipe, **given, "recipe_options": sorted(recipe)}


def parse_alpha(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--focal-alpha {text!r} is not a number or 'none'") from None


def run(args) -> int:
    from train.cli import TERMINATED  # noqa: PLC0415
    from train.fit import FitConfig, configure_tensorflow, fit  # noqa: PLC0415
    from train.models import model_entry  # noqa: PLC0415

    given = given_options(args)
    if not args.resume and "data" not in given:
        raise ConfigError("--data is required (except with --resume)")
    config = FitConfig.from_dict(with_recipe(given, model_entry, FitConfig.arch, args))
    configure_tensorflow(args.threads)
    code = 130
    try:
        out = fit(config, resume=args.resume, overrides=given)
    except KeyboardInterrupt:
        out = INTERRUPTED
    except SystemExit as exc:  # SIGTERM: train.cli.sigterm_as_exit
        if exc.code != TERMINATED:
            raise
        out, code = INTERRUPTED, TERMINATED
    if out is INTERRUPTED:
        release_input_pipelines()
        chief = is_chief(config, args.resume, given)
        print("\n" + interrupted_message(Path(args.out), chief), file=sys.stderr)
        return code
    if out is None:
        print("worker done; the chief writes the run folder")
    else:
        print(f"run written to {out}")
    return 0


def release_input_pipelines() -> None:
    """Free what an interrupted model.fit left, while Python still runs.

    The training crops come from a tf.data generator; Keras' objects that hold its iterator
    sit in reference cycles, so without a collection they live until the interpreter shuts
    down, when TensorFlow's finaliser can no longer call back into Python and logs "Error
    occurred when finalizing GeneratorDataset iterator: ... Python interpreter state is not
    initialized". Called outside the `except` block, whose traceback still holds fit's frames.
    """
    gc.collect()


def is_chief(config, resume: bool = False, given: dict | None = None) -> bool:
    """Whether this process writes RUN_DIR (False only for a non-chief multiworker task); a
    resumed run's strategy is the one in its fit_config.json, not the command line's default."""
    from train.distribute import worker_role  # noqa: PLC0415
    from train.fit import run_strategy  # noqa: PLC0415

    try:
        return worker_role(run_strategy(config, resume, given)).is_chief
    except ConfigError:
        return True


def interrupted_message(out: Path, chief: bool = True) -> str:
    """What Ctrl-C (or SIGTERM) leaves: the command that continues, or that nothing is kept."""
    from train import rundir  # noqa: PLC0415

    if not chief:
        return ("train fit: interrupted; this worker keeps nothing (the chief writes RUN_DIR): "
                "continue with the chief's resume command on every worker")
    state_path = out / rundir.STATE_FILE
    if not state_path.is_file():
        return ("train fit: interrupted before the first epoch finished; nothing was kept, "
                "run the same command again")
    state = json.loads(state_path.read_text())
    stored = json.loads((out / rundir.CONFIG_FILE).read_text())
    where = (" on every worker, each with its TF_CONFIG"
             if stored.get("strategy") == "multiworker" else "")
    return (f"train fit: interrupted after epoch {state['epoch']} of {stored.get('epochs')}; "
            f"resume with: train fit --resume --out {shlex.quote(str(out))}{where}")
