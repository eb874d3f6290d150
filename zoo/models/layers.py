"""Blocks shared by the model families."""
from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="zoo")
class Normalize(layers.Layer):
    """Maps raw pixels (0..255) to the model's input range: (x - mean) / std per channel.

    Living inside the model, it travels with the saved model, so evaluation and inference
    always preprocess exactly as training did.
    """

    def __init__(
        self, mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0), reverse_channels=False, **kwargs
    ):
        super().__init__(**kwargs)
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        # reverse_channels=True flips RGB -> BGR *before* (x - mean) / std, so mean and std
        # are given in the reversed (BGR) order, as caffe-style preprocessing does.
        self.reverse_channels = bool(reverse_channels)

    def call(self, inputs):
        mean = ops.convert_to_tensor(self.mean, dtype=self.compute_dtype)
        std = ops.convert_to_tensor(self.std, dtype=self.compute_dtype)
        x = ops.cast(inputs, self.compute_dtype)
        if self.reverse_channels:
            x = ops.flip(x, axis=-1)
        return (x - mean) / std

    def get_config(self):
        return {
            **super().get_config(),
            "mean": self.mean,
            "std": self.std,
            "reverse_channels": self.reverse_channels,
        }


# Common preprocessing conventions, in pixel units.
IMAGENET_MEAN_STD = {"mean": (123.675, 116.28, 103.53), "std": (58.395, 57.12, 57.375)}
UNIT_SCALE = {"mean": (0.0, 0.0, 0.0), "std": (255.0, 255.0, 255.0)}  # -> [0, 1]
SYMMETRIC_UNIT_SCALE = {"mean": (127.5, 127.5, 127.5), "std": (127.5, 127.5, 127.5)}  # -> [-1, 1]
IDENTITY = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}  # the model preprocesses itself
# Caffe style (Keras Applications `preprocess_input(mode="caffe")`): RGB -> BGR, then subtract
# the BGR ImageNet mean, no scaling.
CAFFE_BGR = {"mean": (103.939, 116.779, 123.68), "std": (1.0, 1.0, 1.0), "reverse_channels": True}


def classifier_head(x, num_classes: int, dropout: float = 0.0, name: str = "predictions"):
    """Global-average-pool, optional dropout, dense softmax; probabilities always float32."""
    if len(x.shape) == 4:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.Dense(num_classes, name=f"{name}_dense")(x)
    return layers.Activation("softmax", dtype="float32", name=name)(x)


def feature_model(inputs, features: dict, name: str):
    """A features_only model: same input, output a dict {"P<k>": stride-2**k feature map}.

    Levels are sorted by stride; every builder's `features_only=True` goes through here so the
    output structure is the same across families.
    """
    ordered = {key: features[key] for key in sorted(features, key=lambda k: int(k[1:]))}
    return keras.Model(inputs, ordered, name=f"{name}_features")
