"""`train`: data tools and model training for the ML engineer."""

import signal
import threading
from contextlib import contextmanager

from edge.clirunner import run_main

TERMINATED = 143  # 128 + SIGTERM, the shell's code for a process ended by SIGTERM

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
    with sigterm_as_exit():
        return run_main("train", __doc__, COMMANDS, argv)


@contextmanager
def sigterm_as_exit():
    """SIGTERM (systemd, a cluster scheduler) raises SystemExit(143) in the main thread, so
    `finally` blocks still run: a non-chief worker removes its scratch folder, a failed fresh
    start its RUN_DIR. Python's default for SIGTERM ends the process without them. SIGINT
    (Ctrl-C) keeps Python's KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _exit_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_terminated(signum, frame):
    raise SystemExit(TERMINATED)


if __name__ == "__main__":
    raise SystemExit(main())
