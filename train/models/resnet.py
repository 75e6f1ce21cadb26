"""ResNet-50/101/152 backbones from keras.applications with the project's input and head."""

from __future__ import annotations

import logging

from edge.errors import ModelError
from train.models.registry import FEATURES_POOL, INPUT_NAME, OUTPUT_NAME, TILE, register_model

log = logging.getLogger(__name__)

# Parameters with 3 classes (backbone without top + Dense head), as `train models` lists them.
RESNET50_PARAMETERS = 23_593_859
RESNET101_PARAMETERS = 42_664_323
RESNET152_PARAMETERS = 58_377_091

# keras.applications ResNets ("caffe" preprocessing) expect BGR pixels minus these channel means.
# The gray channel is repeated, so the BGR order needs no swap.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


def _build(app_name: str, num_classes: int, weights: str):
    import keras  # noqa: PLC0415

    from train.models.layers import GrayToRGB  # noqa: PLC0415

    inputs = keras.Input((TILE, TILE, 1), dtype="uint8", name=INPUT_NAME)
    x = GrayToRGB(3, name="gray_to_rgb")(inputs)
    x = keras.layers.Rescaling(
        scale=1.0, offset=[-m for m in CAFFE_BGR_MEAN], name="normalize"
    )(x)
    backbone = _backbone(keras, app_name, weights)
    x = backbone(x)
    x = keras.layers.GlobalAveragePooling2D(name=FEATURES_POOL)(x)
    outputs = keras.layers.Dense(
        num_classes, activation="sigmoid", dtype="float32", name=OUTPUT_NAME
    )(x)
    return keras.Model(inputs, outputs, name=f"steel_{app_name.lower()}")


def _backbone(keras, app_name: str, weights: str):
    application = getattr(keras.applications, app_name)
    try:
        return application(
            include_top=False,
            weights="imagenet" if weights == "imagenet" else None,
            input_shape=(TILE, TILE, 3),
            pooling=None,
        )
    except Exception as exc:
        if weights != "imagenet":
            raise
        reason = " ".join(str(exc).split())[:200]
        raise ModelError(
            f"cannot download the ImageNet weights of {app_name} ({reason}); put the file in "
            "~/.keras/models/ on a machine without internet, or use --weights none"
        ) from None


@register_model("ResNet-50 (keras.applications) + sigmoid head", pretrained=("imagenet",),
                parameters=RESNET50_PARAMETERS)
def resnet50(num_classes: int, weights: str = "none"):
    return _build("ResNet50", num_classes, weights)


@register_model("ResNet-101 (keras.applications) + sigmoid head", pretrained=("imagenet",),
                parameters=RESNET101_PARAMETERS)
def resnet101(num_classes: int, weights: str = "none"):
    return _build("ResNet101", num_classes, weights)


@register_model("ResNet-152 (keras.applications) + sigmoid head; the paper's choice",
                pretrained=("imagenet",), parameters=RESNET152_PARAMETERS)
def resnet152(num_classes: int, weights: str = "none"):
    return _build("ResNet152", num_classes, weights)
