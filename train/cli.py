"""`train`: data tools and model training for the ML engineer."""

from edge.clirunner import run_main

COMMANDS = {
    "synth": ("train.commands.synth", "generate a Severstal-format data folder"),
    "check-data": ("train.commands.check_data", "validate a Severstal-format folder"),
    "split": ("train.commands.split", "write the train/validation/test splits file"),
    "models": ("train.commands.models", "list the architectures and their default recipes"),
    "fit": ("train.commands.fit", "train a model and write RUN_DIR"),
    "evaluate": ("train.commands.evaluate", "re-run the evaluation of RUN_DIR"),
    "explain": ("train.commands.explain", "class activation maps (Grad-CAM) for one image"),
}


def main(argv=None) -> int:
    return run_main("train", __doc__, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
