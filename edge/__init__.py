"""steel-inspect edge: the line-PC daemon and the code every stage shares.

Shared: tiling, the model card, inference runtimes, errors and CLI plumbing.

This package is the bottom layer: it never imports TensorFlow, `train` or `convert`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("steel-inspect")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
