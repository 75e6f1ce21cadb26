"""steel-inspect train: data tools (numpy only) and model training (TensorFlow, imported lazily).

Modules that import TensorFlow: `train.models`, `train.pipeline`, `train.fit`, `train.explain` and
their commands. Everything else here is numpy-only and may be imported by `convert`.
"""
