"""ImageNet ResNet-18/34 with BasicBlocks, layer for layer the torchvision architecture.

7x7/2 stem conv, 3x3/2 max-pool, four stages of BasicBlocks (64, 128, 256, 512 filters), a 1x1
strided conv + BN projection shortcut where the shape changes (option B), global average
pooling and the dense softmax head. Parameter counts equal torchvision's resnet18/resnet34
(11,689,512 / 21,797,672 trainable with 1000 classes). Padding is explicit and symmetric
(ZeroPadding2D + "valid"), as in PyTorch, so torchvision weights transfer one-to-one
(conv kernels transposed OIHW -> HWIO). BatchNorm uses PyTorch's epsilon 1e-5 and momentum 0.1
(Keras momentum 0.9). Layer names follow Keras Applications' ResNet50 scheme
("conv{stage}_block{i}_{j}_conv", "..._0_conv" for the projection, "..._out" for block outputs).

Input: raw pixels 0..255, normalized with the ImageNet mean/std (IMAGENET_MEAN_STD), as
torchvision's transforms do.

features_only pyramid ("Pk" = the last layer at stride 2**k): P1 "conv1_relu", P2
"conv2_block{n}_out", P3 "conv3_block{n}_out", P4 "conv4_block{n}_out", P5 "conv5_block{n}_out"
(n = the stage's last block).
"""
from __future__ import annotations


from zoo.lazy import LazyModule, keras, layers
from zoo.registry import register

zoo_layers = LazyModule("zoo.models.layers")  # Keras layer classes: imported when a model is built

_BN = {"momentum": 0.9, "epsilon": 1e-5}


def _kaiming_fan_out():  # torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu")
    return keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="untruncated_normal")


def _conv(x, filters, kernel, strides, name):
    pad = kernel // 2
    if pad:
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    return layers.Conv2D(
        filters, kernel, strides=strides, use_bias=False,
        kernel_initializer=_kaiming_fan_out(), name=f"{name}_conv",
    )(x)


def _basic_block(x, filters, strides, name):
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv(x, filters, 1, strides, f"{name}_0")
        shortcut = layers.BatchNormalization(**_BN, name=f"{name}_0_bn")(shortcut)
    x = _conv(x, filters, 3, strides, f"{name}_1")
    x = layers.BatchNormalization(**_BN, name=f"{name}_1_bn")(x)
    x = layers.ReLU(name=f"{name}_1_relu")(x)
    x = _conv(x, filters, 3, 1, f"{name}_2")
    x = layers.BatchNormalization(**_BN, name=f"{name}_2_bn")(x)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.ReLU(name=f"{name}_out")(x)


def _build(name, blocks, input_shape, num_classes, features_only, dropout):
    inputs = keras.Input(shape=input_shape, name="image")
    x = zoo_layers.Normalize(**zoo_layers.IMAGENET_MEAN_STD, name="normalize")(inputs)
    x = _conv(x, 64, 7, 2, "conv1")
    x = layers.BatchNormalization(**_BN, name="conv1_bn")(x)
    x = layers.ReLU(name="conv1_relu")(x)
    features = {"P1": x}
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)  # post-ReLU, so 0-padding == -inf padding
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage, (filters, n) in enumerate(zip((64, 128, 256, 512), blocks)):
        for block in range(n):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, strides, f"conv{stage + 2}_block{block + 1}")
        features[f"P{stage + 2}"] = x
    if features_only:
        return zoo_layers.feature_model(inputs, features, name)
    return keras.Model(inputs, zoo_layers.classifier_head(x, num_classes, dropout), name=name)


@register(task="classification", input_shape=(224, 224, 3))
def resnet18(input_shape=(224, 224, 3), num_classes=1000, features_only=False, dropout=0.0):
    """He et al. 2016, "Deep Residual Learning for Image Recognition", ResNet-18 (torchvision variant)."""
    return _build("resnet18", (2, 2, 2, 2), input_shape, num_classes, features_only, dropout)


@register(task="classification", input_shape=(224, 224, 3))
def resnet34(input_shape=(224, 224, 3), num_classes=1000, features_only=False, dropout=0.0):
    """He et al. 2016, "Deep Residual Learning for Image Recognition", ResNet-34 (torchvision variant)."""
    return _build("resnet34", (3, 4, 6, 3), input_shape, num_classes, features_only, dropout)
