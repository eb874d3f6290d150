"""ImageNet classifiers built from Keras Applications: ResNet50/101, MobileNetV2/V3,
EfficientNetB0-B3, ConvNeXt-Tiny.

Each builder calls `keras.applications.X(include_top=False, weights=None, input_tensor=...)`
on the output of our `Normalize` layer, so the model is one flat functional graph whose
backbone layers carry exactly Keras Applications' layer names and structure (the ImageNet
`.h5` weight files Keras Applications uses load into them), followed by a head that has the
same parameters as Keras Applications' own top (`include_top=True`), so parameter counts with
1000 classes equal Keras Applications' (tests/test_models_classification.py pins them):

* ResNet50/101, MobileNetV2, EfficientNet: global average pooling ["avg_pool"], dropout as
  Keras' top ("head_dropout"), Dense ["predictions_dense"], float32 softmax ["predictions"].
  Keras' top Dense is called "predictions": same kernel/bias shapes, another name.
* MobileNetV3: as Keras' top, pooling ["avg_pool", keepdims], 1x1 conv with bias ["conv_2",
  Keras' name] + hard-swish, flatten, dropout, then the Dense head. Keras' "logits" 1x1 conv
  kernel (1, 1, C, K) is our "predictions_dense" kernel (C, K) reshaped.
* ConvNeXt: as Keras' top, pooling ["convnext_tiny_head_gap"], LayerNorm
  ["convnext_tiny_head_layernorm"], then the Dense head (Keras' "convnext_tiny_head_dense").
  Keras' include_top=False model ends in an extra (auto-named) LayerNorm applied *before*
  pooling; we branch off before it, so it is not part of our models.

Preprocessing (the leading `Normalize`, inputs are raw RGB pixels 0..255) is exactly what Keras
Applications' `preprocess_input` does for the family:
* ResNet50/101: caffe, RGB->BGR then minus the BGR ImageNet mean, no scaling (CAFFE_BGR).
* MobileNetV2: x / 127.5 - 1 (SYMMETRIC_UNIT_SCALE).
* MobileNetV3, EfficientNet, ConvNeXt: identity (IDENTITY); their Keras models preprocess
  themselves (Rescaling / Normalization layers inside the backbone, kept as they are).
  EfficientNet caveat for weight loading: Keras adds a Rescaling(1/sqrt(IMAGENET_STDDEV_RGB))
  after its "normalization" layer only when built with weights="imagenet" (the .h5 stores the
  std as the "variance"); built with weights=None, ours lacks it, so after loading the ImageNet
  .h5 set that layer's variance to its square to get (x/255 - mean) / std.

features_only pyramid: "Pk" is the last layer at stride 2**k (the tensor that feeds the next
stride-2 stage; the backbone's final feature map for P5). Layer names ("in:" = the input
tensor of that layer, for levels whose producer is an unnamed layer or op):
* resnet50/101: P1 conv1_relu, P2 conv2_block3_out, P3 conv3_block4_out,
  P4 conv4_block6_out (resnet101: conv4_block23_out), P5 conv5_block3_out.
* mobilenet_v2: P1 block_1_expand_relu, P2 block_3_expand_relu, P3 block_6_expand_relu,
  P4 block_13_expand_relu, P5 out_relu.
* mobilenet_v3_small: P1..P4 in:expanded_conv_{,1_,3_,8_}depthwise_pad, P5 final activation.
* mobilenet_v3_large: P1..P4 in:expanded_conv_{1,3,6,12}_depthwise_pad, P5 final activation.
* efficientnet_b*: P1 block2a_expand_activation, P2 block3a_expand_activation,
  P3 block4a_expand_activation, P4 block6a_expand_activation, P5 top_activation.
* convnext_tiny (4x4 stem: no P1): P2..P4 in:convnext_tiny_downsampling_block_{0,1,2},
  P5 the last stage's output.
"""
from __future__ import annotations

import keras
from keras import layers

from zoo.models.layers import (
    CAFFE_BGR,
    IDENTITY,
    SYMMETRIC_UNIT_SCALE,
    Normalize,
    classifier_head,
    feature_model,
)
from zoo.registry import register

# name -> (Keras Applications constructor name, preprocessing, head kind, pyramid taps)
# A tap is a layer name (its output) or "in:<layer name>" (that layer's input tensor);
# None means the backbone's final feature map.
_RESNET_TAPS = {"P1": "conv1_relu", "P2": "conv2_block3_out", "P3": "conv3_block4_out"}
_EFFNET_TAPS = {
    "P1": "block2a_expand_activation",
    "P2": "block3a_expand_activation",
    "P3": "block4a_expand_activation",
    "P4": "block6a_expand_activation",
    "P5": "top_activation",
}
_SPECS = {
    "resnet50": ("ResNet50", CAFFE_BGR, "gap",
                 {**_RESNET_TAPS, "P4": "conv4_block6_out", "P5": "conv5_block3_out"}),
    "resnet101": ("ResNet101", CAFFE_BGR, "gap",
                  {**_RESNET_TAPS, "P4": "conv4_block23_out", "P5": "conv5_block3_out"}),
    "mobilenet_v2": ("MobileNetV2", SYMMETRIC_UNIT_SCALE, "gap", {
        "P1": "block_1_expand_relu",
        "P2": "block_3_expand_relu",
        "P3": "block_6_expand_relu",
        "P4": "block_13_expand_relu",
        "P5": "out_relu",
    }),
    "mobilenet_v3_small": ("MobileNetV3Small", IDENTITY, "mobilenet_v3", {
        "P1": "in:expanded_conv_depthwise_pad",
        "P2": "in:expanded_conv_1_depthwise_pad",
        "P3": "in:expanded_conv_3_depthwise_pad",
        "P4": "in:expanded_conv_8_depthwise_pad",
        "P5": None,
    }),
    "mobilenet_v3_large": ("MobileNetV3Large", IDENTITY, "mobilenet_v3", {
        "P1": "in:expanded_conv_1_depthwise_pad",
        "P2": "in:expanded_conv_3_depthwise_pad",
        "P3": "in:expanded_conv_6_depthwise_pad",
        "P4": "in:expanded_conv_12_depthwise_pad",
        "P5": None,
    }),
    "efficientnet_b0": ("EfficientNetB0", IDENTITY, "gap", _EFFNET_TAPS),
    "efficientnet_b1": ("EfficientNetB1", IDENTITY, "gap", _EFFNET_TAPS),
    "efficientnet_b2": ("EfficientNetB2", IDENTITY, "gap", _EFFNET_TAPS),
    "efficientnet_b3": ("EfficientNetB3", IDENTITY, "gap", _EFFNET_TAPS),
    "convnext_tiny": ("ConvNeXtTiny", IDENTITY, "convnext", {
        "P2": "in:convnext_tiny_downsampling_block_0",
        "P3": "in:convnext_tiny_downsampling_block_1",
        "P4": "in:convnext_tiny_downsampling_block_2",
        "P5": None,
    }),
}
_MOBILENET_V3_LAST_POINT = {"mobilenet_v3_small": 1024, "mobilenet_v3_large": 1280}


def _tap(backbone, tap, final):
    if tap is None:
        return final
    if tap.startswith("in:"):
        return backbone.get_layer(tap[3:]).input
    return backbone.get_layer(tap).output


def _build(name, input_shape, num_classes, features_only, dropout):
    app_name, preprocessing, head, taps = _SPECS[name]
    inputs = keras.Input(shape=input_shape, name="image")
    x = Normalize(**preprocessing, name="normalize")(inputs)
    backbone = getattr(keras.applications, app_name)(
        include_top=False, weights=None, input_tensor=x
    )
    features = backbone.output
    if head == "convnext":
        # Keras' include_top=False ConvNeXt ends in a LayerNorm its top does not use
        # (the top pools, then normalizes): take the last stage's output.
        features = backbone.layers[-1].input
    if features_only:
        pyramid = {level: _tap(backbone, tap, features) for level, tap in taps.items()}
        return feature_model(inputs, pyramid, name)

    x = features
    if head == "mobilenet_v3":
        x = layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
        x = layers.Conv2D(_MOBILENET_V3_LAST_POINT[name], 1, name="conv_2")(x)
        x = layers.Activation("hard_swish", name="conv_2_activation")(x)
        x = layers.Flatten(name="flatten")(x)
    elif head == "convnext":
        x = layers.GlobalAveragePooling2D(name=f"{name}_head_gap")(x)
        x = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_head_layernorm")(x)
    return keras.Model(inputs, classifier_head(x, num_classes, dropout), name=name)


@register(task="classification", input_shape=(224, 224, 3))
def resnet50(input_shape=(224, 224, 3), num_classes=1000, features_only=False, dropout=0.0):
    """He et al. 2016, "Deep Residual Learning for Image Recognition", ResNet-50 (Keras Applications)."""
    return _build("resnet50", input_shape, num_classes, features_only, dropout)


@register(task="classification", input_shape=(224, 224, 3))
def resnet101(input_shape=(224, 224, 3), num_classes=1000, features_only=False, dropout=0.0):
    """He et al. 2016, "Deep Residual Learning for Image Recognition", ResNet-101 (Keras Applications)."""
    return _build("resnet101", input_shape, num_classes, features_only, dropout)


@register(task="classification", input_shape=(224, 224, 3))
def mobilenet_v2(input_shape=(224, 224, 3), num_classes=1000, features_only=False, dropout=0.0):
    """Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks" (Keras Applications, alpha 1.0)."""
    return _build("mobilenet_v2", input_shape, num_classes, features_only, dropout)


@register(task="classification", input_shape=(224, 224, 3))
def mobilenet_v3_small(
    input_shape=(224, 224, 3), num_classes=1000, features_only=False, dropout=0.2
):
    """Howard et al. 2019, "Searching for MobileNetV3", MobileNetV3-Small (Keras Applications, alpha 1.0)."""
    return _build("mobilenet_v3_small", input_shape, num_classes, features_only, dropout)


@register(task="classification", input_shape=(224, 224, 3))
def mobilenet_v3_large(
    input_shape=(224, 224, 3), num_classes=1000, features_only=False, dropout=0.2
):
    """Howard et al. 2019, "Searching for MobileNetV3", MobileNetV3-Large (Keras Applications, alpha 1.0)."""
    return _build("mobilenet_v3_large", input_shape, num_classes, features_only, dropout)


@register(task="classification", input_shape=(224, 224, 3))
def efficientnet_b0(input_shape=(224, 224, 3), num_classes=1000, features_only=False, dropout=0.2):
    """Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", B0 (Keras Applications)."""
    return _build("efficientnet_b0", input_shape, num_classes, features_only, dropout)


@register(task="classification", input_shape=(240, 240, 3))
def efficientnet_b1(input_shape=(240, 240, 3), num_classes=1000, features_only=False, dropout=0.2):
    """Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", B1 (Keras Applications)."""
    return _build("efficientnet_b1", input_shape, num_classes, features_only, dropout)


@register(task="classification", input_shape=(260, 260, 3))
def efficientnet_b2(input_shape=(260, 260, 3), num_classes=1000, features_only=False, dropout=0.3):
    """Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", B2 (Keras Applications)."""
    return _build("efficientnet_b2", input_shape, num_classes, features_only, dropout)


@register(task="classification", input_shape=(300, 300, 3))
def efficientnet_b3(input_shape=(300, 300, 3), num_classes=1000, features_only=False, dropout=0.3):
    """Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", B3 (Keras Applications)."""
    return _build("efficientnet_b3", input_shape, num_classes, features_only, dropout)


@register(task="classification", input_shape=(224, 224, 3))
def convnext_tiny(input_shape=(224, 224, 3), num_classes=1000, features_only=False, dropout=0.0):
    """Liu et al. 2022, "A ConvNet for the 2020s", ConvNeXt-Tiny (Keras Applications)."""
    return _build("convnext_tiny", input_shape, num_classes, features_only, dropout)
