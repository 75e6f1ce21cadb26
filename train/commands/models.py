"""`train models`: the architectures of the registry with their default training recipes."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.set_defaults()


def run(args) -> int:
    from train.models.listing import models_table  # noqa: PLC0415

    print(models_table())
    return 0
