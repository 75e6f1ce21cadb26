"""Inference backends as small plugins behind one interface (see `base.Runtime`)."""

from edge.inference.runtime.base import InputSpec, Runtime, available_backends, load_runtime

__all__ = ["InputSpec", "Runtime", "available_backends", "load_runtime"]
