"""CIFAR ResNets (He et al. 2016, sec. 4.2): resnet20/32/44/56/110, depth = 6n + 2.

A 3x3/16 stem, then three stages of n BasicBlocks with 16, 32 and 64 filters at strides 1, 2
and 4, global average pooling and the dense softmax head. Shortcuts are option A: parameter-free
identity, subsampled and zero-padded in channels where the shape changes (`ZeroPadShortcut`),
which gives the paper's parameter counts (Table 6: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M).
Stride-2 convolutions pad one pixel on every side (as the original Torch code does), so the
residual branch samples the same pixels as the strided shortcut.

Input: raw pixels 0..255, scaled to [0, 1] by the leading `Normalize` (UNIT_SCALE).

features_only pyramid ("Pk" = the last layer at stride 2**k, i.e. each stage's last block):
P0 "stage1_block{n}_out" (stride 1), P1 "stage2_block{n}_out" (stride 2),
P2 "stage3_block{n}_out" (stride 4).
"""
from __future__ import annotations


from zoo.lazy import LazyModule, keras, layers
from zoo.registry import register

zoo_layers = LazyModule("zoo.models.layers")  # Keras layer classes: imported when a model is built

_CITATION = 'He et al. 2016, "Deep Residual Learning for Image Recognition", CIFAR ResNet (sec. 4.2).'
_BN = {"momentum": 0.9, "epsilon": 1e-5}


def _conv_bn(x, filters, strides, name, relu=True):
    if strides > 1:
        x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    x = layers.Conv2D(
        filters, 3, strides=strides, padding="valid" if strides > 1 else "same", use_bias=False,
        kernel_initializer="he_normal", name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(**_BN, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _basic_block(x, filters, strides, name):
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = zoo_layers.ZeroPadShortcut(filters, strides, name=f"{name}_shortcut")(x)
    x = _conv_bn(x, filters, strides, f"{name}_1")
    x = _conv_bn(x, filters, 1, f"{name}_2", relu=False)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.ReLU(name=f"{name}_out")(x)


def _build(depth, input_shape, num_classes, features_only, dropout):
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
    n = (depth - 2) // 6
    name = f"resnet{depth}"
    inputs = keras.Input(shape=input_shape, name="image")
    x = zoo_layers.Normalize(**zoo_layers.UNIT_SCALE, name="normalize")(inputs)
    x = _conv_bn(x, 16, 1, "stem")
    features = {}
    for stage, (filters, strides) in enumerate(((16, 1), (32, 2), (64, 2))):
        for block in range(n):
            x = _basic_block(
                x, filters, strides if block == 0 else 1, f"stage{stage + 1}_block{block + 1}"
            )
        features[f"P{stage}"] = x
    if features_only:
        return zoo_layers.feature_model(inputs, features, name)
    return keras.Model(inputs, zoo_layers.classifier_head(x, num_classes, dropout), name=name)


def _register(depth):
    def builder(input_shape=(32, 32, 3), num_classes=10, features_only=False, dropout=0.0):
        return _build(depth, input_shape, num_classes, features_only, dropout)

    builder.__name__ = builder.__qualname__ = f"resnet{depth}"
    builder.__doc__ = f"{_CITATION}\n\nresnet{depth}: n = {(depth - 2) // 6} blocks per stage."
    return register(task="classification", input_shape=(32, 32, 3), name=f"resnet{depth}")(builder)


resnet20 = _register(20)
resnet32 = _register(32)
resnet44 = _register(44)
resnet56 = _register(56)
resnet110 = _register(110)
