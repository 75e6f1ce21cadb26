"""User-facing errors: each carries a one-line message naming the file, key or value at fault."""


class SteelInspectError(Exception):
    """An error the user can act on; CLIs print it as one line and exit with `exit_code`."""

    exit_code = 2


class ConfigError(SteelInspectError):
    """The configuration file is missing, unreadable or invalid."""


class ModelError(SteelInspectError):
    """A model, model card, engine or manifest is missing, invalid or incompatible."""


class DataError(SteelInspectError):
    """A dataset folder, CSV row, mask or image is missing or invalid."""


class ModelFault(ModelError):
    """A runtime returned outputs the model cannot produce (NaN, inf, outside [0, 1], wrong shape).

    The frame it was run on is not inspected: a fault is never read as "no defects".
    """


class PackageError(ModelError):
    """A model package (.sipkg) is damaged, tampered with, incomplete or of an unknown format."""
