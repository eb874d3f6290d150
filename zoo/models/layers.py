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


def classifier_head(x, num_classes: int, dropout: float = 0.0, name: str = "predictions", *,
                    dense_name: str | None = None, pool_name: str = "avg_pool",
                    dropout_name: str = "head_dropout"):
    """Global-average-pool, optional dropout, dense softmax; probabilities always float32.

    Layer names: the softmax Activation is `name`, the Dense `dense_name` (default
    f"{name}_dense"), the pooling `pool_name`, the dropout `dropout_name` (Keras Applications
    wrappers pass Keras' own names, e.g. dense_name="predictions", name="probabilities").
    """
    if len(x.shape) == 4:
        x = layers.GlobalAveragePooling2D(name=pool_name)(x)
    if dropout:
        x = layers.Dropout(dropout, name=dropout_name)(x)
    x = layers.Dense(num_classes, name=dense_name or f"{name}_dense")(x)
    return layers.Activation("softmax", dtype="float32", name=name)(x)


@keras.saving.register_keras_serializable(package="zoo")
class FeatureModel(keras.Model):
    """A functional model whose output is {"P<k>": stride-2**k feature map}; `.feature_info`
    (zoo.models.features) describes its levels, read from the graph, so it survives saving."""

    @property
    def feature_info(self):
        from zoo.models.features import feature_info

        return feature_info(self)


def feature_model(inputs, features: dict, name: str):
    """A features_only model: same input, output a dict {"P<k>": stride-2**k feature map}.

    Levels are sorted by stride; every builder's `features_only=True` goes through here so the
    output structure is the same across families.
    """
    ordered = {key: features[key] for key in sorted(features, key=lambda k: int(k[1:]))}
    return FeatureModel(inputs, ordered, name=f"{name}_features")


@keras.saving.register_keras_serializable(package="zoo")
class ZeroPadShortcut(layers.Layer):
    """Option-A shortcut: x[:, ::s, ::s, :] with zero channels added (half before, half after)."""

    def __init__(self, filters, strides=2, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)

    def call(self, inputs):
        s = self.strides
        x = inputs[:, ::s, ::s, :]
        extra = self.filters - inputs.shape[-1]
        before = extra // 2
        return ops.pad(x, [[0, 0], [0, 0], [0, 0], [before, extra - before]])

    def compute_output_shape(self, input_shape):
        s = self.strides
        b, h, w, _ = input_shape
        h = None if h is None else -(-h // s)
        w = None if w is None else -(-w // s)
        return (b, h, w, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}


@keras.saving.register_keras_serializable(package="zoo")
class AnchorOutputs(layers.Layer):
    """Flattens per-level head outputs to (batch, anchors, 4 + classes) and records the anchors.

    Inputs: a list of `num_levels` box maps (B, H, W, A * 4) followed by `num_levels` class
    maps (B, H, W, A * num_classes), levels ordered min_level..max_level.
    """

    def __init__(self, num_classes, image_size, min_level=3, max_level=7, anchor_size=4.0,
                 num_scales=3, aspect_ratios=(0.5, 1.0, 2.0), **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.image_size = [int(s) for s in image_size]
        self.min_level = int(min_level)
        self.max_level = int(max_level)
        self.anchor_size = float(anchor_size)
        self.num_scales = int(num_scales)
        self.aspect_ratios = [float(r) for r in aspect_ratios]

    def anchor_config(self) -> dict:
        return {"image_size": list(self.image_size), "min_level": self.min_level,
                "max_level": self.max_level, "anchor_size": self.anchor_size,
                "num_scales": self.num_scales, "aspect_ratios": list(self.aspect_ratios)}

    def call(self, inputs):
        levels = len(inputs) // 2
        batch = ops.shape(inputs[0])[0]
        boxes = [ops.reshape(x, (batch, -1, 4)) for x in inputs[:levels]]
        classes = [ops.reshape(x, (batch, -1, self.num_classes)) for x in inputs[levels:]]
        return ops.concatenate([ops.concatenate(boxes, axis=1), ops.concatenate(classes, axis=1)],
                               axis=-1)

    def compute_output_shape(self, input_shapes):
        levels = len(input_shapes) // 2
        total = 0
        for shape in input_shapes[:levels]:
            if shape[1] is None or shape[2] is None:
                total = None
                break
            total += shape[1] * shape[2] * shape[3] // 4
        return (input_shapes[0][0], total, 4 + self.num_classes)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, **self.anchor_config()}


def backbone_pyramid(backbone: str, input_shape, weights=None):
    """A registered classifier's `features_only` model ({"Pk": stride-2**k map}) for detectors,
    U-Nets and frame encoders to build on, with `weights` (a tag of the classifier, "imagenet",
    True, a local file or a URL; `create_model(..., pretrained=...)` passes it as the builder's
    `backbone_weights`). Weights that cannot be loaded are a one-line BackboneWeightsError."""
    from zoo import weights as zoo_weights
    from zoo.errors import ZooError
    from zoo.registry import get_entry

    try:
        entry = get_entry(backbone)
    except ZooError as err:
        raise ZooError(f"backbone: {err}") from None
    if entry.task != "classification":
        raise ZooError(f"backbone {backbone!r} is a {entry.task} model; a backbone must be a registered classifier")
    try:
        features = entry.builder(input_shape=tuple(input_shape), features_only=True)
    except TypeError:
        raise ZooError(f"backbone {backbone!r} has no feature pyramid (features_only=True)") from None
    if not isinstance(features.output, dict) or not features.output:
        raise ZooError(f"backbone {backbone!r}: features_only did not return a {{'Pk': map}} dict")
    if weights not in (None, False, ""):
        try:
            zoo_weights.load_backbone_weights(features, backbone, weights)
        except ZooError as err:
            raise zoo_weights.BackboneWeightsError(
                str(err), unknown=isinstance(err, zoo_weights.UnknownWeightsError)) from None
    return features
