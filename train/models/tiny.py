"""`tiny`: a few residual blocks that train on a CPU in minutes (tests, demos, pipelines)."""

from __future__ import annotations

from train.models.blocks import bn, residual_block
from train.models.recipe import TINY_CPU_RECIPE
from train.models.registry import FEATURES_POOL, INPUT_NAME, OUTPUT_NAME, TILE, register_model

# Fixed pixel statistics: BatchNorm after the stem absorbs the rest.
PIXEL_MEAN = 128.0
PIXEL_STD = 64.0
TINY_PARAMETERS = 63_731  # with 3 classes (checked in tests/test_train_models.py)
STEM_FILTERS = 16
BLOCK_FILTERS = (24, 32, 48)


@register_model("4x4 patch stem + three residual blocks (64 k parameters): CPU training, tests",
                recipe=TINY_CPU_RECIPE, parameters=TINY_PARAMETERS)
def tiny(num_classes: int, weights: str = "none"):
    import keras  # noqa: PLC0415

    layers = keras.layers
    inputs = keras.Input((TILE, TILE, 1), dtype="uint8", name=INPUT_NAME)
    x = layers.Rescaling(1.0 / PIXEL_STD, offset=-PIXEL_MEAN / PIXEL_STD, name="normalize")(inputs)
    # A 4x4 stride-4 stem (non-overlapping patches): 4x cheaper than a stride-2 conv + pooling.
    x = layers.Conv2D(STEM_FILTERS, 4, strides=4, use_bias=False, name="stem_conv")(x)
    x = bn(layers, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for i, filters in enumerate(BLOCK_FILTERS, start=1):
        x = residual_block(keras, x, filters, stride=2, name=f"block{i}")
    x = layers.GlobalAveragePooling2D(name=FEATURES_POOL)(x)
    outputs = layers.Dense(num_classes, activation="sigmoid", dtype="float32", name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name="tiny")
