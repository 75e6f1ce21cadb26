"""Registry of model architectures: `@register_model` adds a builder, `build_model` calls it.

A builder takes `(num_classes, weights)` with `weights` "none" or "imagenet" and returns a Keras
model with the project's contract: input "image" uint8 [None, 256, 256, 1], all normalisation
inside, output "probabilities" float32 sigmoid [None, num_classes]. Every model has a
GlobalAveragePooling2D layer named "pool" whose input is the last convolutional block (Grad-CAM).
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ModelError
from train.models.recipe import PAPER_RECIPE, Recipe

log = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
FEATURES_POOL = "pool"
TILE = 256
WEIGHT_CHOICES = ("none", "imagenet")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable
    description: str
    pretrained: tuple[str, ...] = ()
    recipe: Recipe = PAPER_RECIPE
    parameters: int | None = None  # with 3 classes (checked in tests/test_train_models.py)


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    description: str,
    pretrained: tuple[str, ...] = (),
    recipe: Recipe = PAPER_RECIPE,
    parameters: int | None = None,
) -> Callable:
    """Decorator: register the builder under its function name, with its default recipe."""

    def wrap(builder: Callable) -> Callable:
        name = builder.__name__
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = ModelEntry(name, builder, description, tuple(pretrained), recipe,
                                   parameters)
        return builder

    return wrap


def list_models() -> list[str]:
    """Names in natural order: resnet18 before resnet101."""
    return sorted(_MODELS, key=lambda name: [int(part) if part.isdigit() else part
                                             for part in re.split(r"(\d+)", name)])


def model_entry(name: str) -> ModelEntry:
    if name not in _MODELS:
        raise ModelError(f"unknown architecture {name!r}; choose one of {', '.join(list_models())}")
    return _MODELS[name]


def build_model(name: str, num_classes: int, weights: str | Path | None = "none"):
    """Build architecture `name` with `num_classes` sigmoid outputs.

    `weights`: "none" (random init), "imagenet" (pretrained backbone; needs the internet or the
    Keras cache) or the path of a Keras checkpoint of the same architecture and class count.
    """
    entry = model_entry(name)
    if num_classes < 1:
        raise ModelError(f"a model needs at least one class, got {num_classes}")
    weights = "none" if weights is None else str(weights)
    if weights in WEIGHT_CHOICES:
        if weights == "imagenet" and "imagenet" not in entry.pretrained:
            raise ModelError(f"architecture {name!r} has no ImageNet weights; use --weights none")
        return entry.builder(num_classes=num_classes, weights=weights)
    model = entry.builder(num_classes=num_classes, weights="none")
    load_checkpoint_weights(model, Path(weights))
    return model


def load_checkpoint_weights(model, path: Path) -> None:
    """Copy the weights of the Keras checkpoint `path` into `model` (same architecture)."""
    if not path.is_file():
        raise ModelError(
            f"{path}: weights must be 'none', 'imagenet' or an existing Keras checkpoint file"
        )
    try:
        with warnings.catch_warnings():  # Keras warns, then raises, on a mismatch
            warnings.simplefilter("ignore", UserWarning)
            model.load_weights(str(path))
    except Exception as exc:  # Keras raises ValueError/KeyError/OSError for mismatches
        reason = " ".join(str(exc).split())[:300]
        raise ModelError(
            f"{path}: checkpoint does not fit {model.name} with {model.output_shape[-1]} "
            f"outputs: {reason}"
        ) from None
    log.info("loaded weights from %s", path)


def load_keras_model(path: str | Path, compile: bool = False):
    """Load a saved model (e.g. RUN_DIR/model.keras) with the project's custom layers."""
    import keras  # noqa: PLC0415

    from train.models import layers  # noqa: F401, PLC0415 (registers the custom layers)

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: Keras model not found")
    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as exc:
        reason = " ".join(str(exc).split())[:300]
        raise ModelError(f"{path}: cannot load the Keras model: {reason}") from None
