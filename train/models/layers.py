"""Custom layers of the project's models (registered for saving/loading `.keras` files).

Kept to ops tf2onnx converts to plain ONNX nodes (Cast, Concat).
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="steel_inspect")
class GrayToRGB(keras.layers.Layer):
    """Cast raw pixels to the compute dtype and repeat one gray channel `channels` times."""

    def __init__(self, channels: int = 3, **kwargs):
        super().__init__(**kwargs)
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.channels = int(channels)

    def call(self, inputs):
        pixels = ops.cast(inputs, self.compute_dtype)
        if self.channels == 1:
            return pixels
        return ops.concatenate([pixels] * self.channels, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] * self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}
