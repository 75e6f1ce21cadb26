"""`resnet18` / `resnet34`: He et al.'s basic-block ResNets, built here (keras.applications has
only the bottleneck ResNet-50/101/152).

Same stem and stage widths as the paper's (7x7/2 convolution, 3x3/2 max pooling, stages of
64-128-256-512 filters), so a 256x256 tile ends in the 8x8 map of every other ResNet; 4.5 GFLOP
per tile against ResNet-50's 10.7 and ResNet-152's 29.5. No ImageNet weights (none are stored
here): they train from random weights.
"""

from __future__ import annotations

from train.models.blocks import bn, residual_block
from train.models.registry import FEATURES_POOL, INPUT_NAME, OUTPUT_NAME, TILE, register_model

# Fixed pixel statistics, as `tiny`: BatchNorm after the stem absorbs the rest.
PIXEL_MEAN = 128.0
PIXEL_STD = 64.0
STAGE_FILTERS = (64, 128, 256, 512)
RESNET18_BLOCKS = (2, 2, 2, 2)
RESNET34_BLOCKS = (3, 4, 6, 3)
# Parameters with 3 classes, as `train models` lists them (checked in tests/test_train_models.py).
RESNET18_PARAMETERS = 11_181_379
RESNET34_PARAMETERS = 21_296_963


def _build(name: str, blocks: tuple[int, ...], num_classes: int):
    import keras  # noqa: PLC0415

    layers = keras.layers
    inputs = keras.Input((TILE, TILE, 1), dtype="uint8", name=INPUT_NAME)
    x = layers.Rescaling(1.0 / PIXEL_STD, offset=-PIXEL_MEAN / PIXEL_STD, name="normalize")(inputs)
    x = layers.Conv2D(STAGE_FILTERS[0], 7, strides=2, padding="same", use_bias=False,
                      name="stem_conv")(x)
    x = bn(layers, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, (filters, count) in enumerate(zip(STAGE_FILTERS, blocks, strict=True), start=1):
        for block in range(1, count + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = residual_block(keras, x, filters, stride, name=f"stage{stage}_block{block}")
    x = layers.GlobalAveragePooling2D(name=FEATURES_POOL)(x)
    outputs = layers.Dense(num_classes, activation="sigmoid", dtype="float32", name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name=f"steel_{name}")


@register_model("ResNet-18 (basic blocks, built here) + sigmoid head: a ResNet a CPU can train",
                parameters=RESNET18_PARAMETERS)
def resnet18(num_classes: int, weights: str = "none"):
    return _build("resnet18", RESNET18_BLOCKS, num_classes)


@register_model("ResNet-34 (basic blocks, built here) + sigmoid head",
                parameters=RESNET34_PARAMETERS)
def resnet34(num_classes: int, weights: str = "none"):
    return _build("resnet34", RESNET34_BLOCKS, num_classes)
