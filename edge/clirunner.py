"""Shared entry-point plumbing for the `edge`, `train` and `convert` command lines.

Each command is a module with `add_arguments(parser)` and `run(args) -> int`; modules are imported
only when their subcommand runs, so `train synth` never pays for importing TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from edge.errors import SteelInspectError

log = logging.getLogger(__name__)


def build_parser(prog: str, description: str, commands: dict[str, tuple[str, str]]):
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in commands.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module_name)
        _load(module_name).add_arguments(sub_parser)
    return parser


def _load(module_name: str):
    return importlib.import_module(module_name)


class CurrentStreamHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout or sys.stderr is at the time of the record.

    A process that runs several commands (tests, notebooks) may swap and close the standard
    streams between them; a handler that kept the first stream would then fail on every record.
    """

    def __init__(self, stream_name: str = "stderr") -> None:
        self.stream_name = stream_name
        super().__init__()

    @property
    def stream(self):
        return getattr(sys, self.stream_name)

    @stream.setter
    def stream(self, value) -> None:
        pass


def install_log_handler(handler: CurrentStreamHandler, level: int | str) -> None:
    """Make `handler` the command line's root handler, replacing one an earlier command set.

    Like `logging.basicConfig`, it stands back when the host process configured logging itself
    (pytest, a notebook): their handlers stay and see the records at their own levels.
    """
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, CurrentStreamHandler):
            root.removeHandler(old)
    if root.handlers:
        return
    root.addHandler(handler)
    root.setLevel(level)


def configure_logging(verbose: bool) -> None:
    handler = CurrentStreamHandler("stderr")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    install_log_handler(handler, logging.DEBUG if verbose else logging.INFO)


def run_main(
    prog: str,
    description: str,
    commands: dict[str, tuple[str, str]],
    argv: Sequence[str] | None = None,
) -> int:
    parser = build_parser(prog, description, commands)
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        return int(_load(args._module).run(args) or 0)
    except SteelInspectError as exc:
        print(f"{prog} {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog} {args.command}: interrupted", file=sys.stderr)
        return 130
