"""Building blocks shared by the project's own architectures (`tiny`, `resnet18`, `resnet34`)."""

from __future__ import annotations

# Short runs: moving statistics must follow the weights within tens of steps, not hundreds
# (Keras' default is 0.99; 0.9 is what PyTorch's ResNets use).
BN_MOMENTUM = 0.9


def bn(layers, name: str):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)


def residual_block(keras, x, filters: int, stride: int, name: str):
    """He et al.'s basic block: two 3x3 convolutions plus a shortcut.

    The shortcut is a strided 1x1 projection where the shape changes, the identity elsewhere.
    """
    layers = keras.layers
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False,
                                 name=f"{name}_proj")(x)
        shortcut = bn(layers, name=f"{name}_proj_bn")(shortcut)
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                      name=f"{name}_conv1")(x)
    y = bn(layers, name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = bn(layers, name=f"{name}_bn2")(y)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)
