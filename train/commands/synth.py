"""Placeholder: this command is being written."""

from edge.errors import SteelInspectError


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    raise SteelInspectError("not implemented yet")
