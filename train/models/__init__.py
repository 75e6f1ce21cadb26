"""Model architectures by name (`build_model`) and Keras model loading (`load_keras_model`).

Importing this package is cheap: Keras is imported only when a model is built or loaded.
"""

from train.models import basic_resnet, resnet, tiny  # noqa: F401 (the architectures register on import)
from train.models.registry import (
    ModelEntry,
    build_model,
    list_models,
    load_keras_model,
    model_entry,
    register_model,
)

__all__ = [
    "ModelEntry",
    "build_model",
    "list_models",
    "load_keras_model",
    "model_entry",
    "register_model",
]
