"""ImageNet classifiers built from Keras Applications: every classifier constructor of
`keras.applications` (Keras 3.15), 40 models in 14 families (`APPLICATIONS` maps the zoo's
name to the Keras constructor).

Each builder calls `keras.applications.X(include_top=False, weights=None, input_tensor=...)`
on the output of the zoo's `Normalize` layer, so the model is one flat functional graph whose
backbone layers carry exactly Keras Applications' layer names and structure, followed by a head
built as Keras builds its own top (`include_top=True`): the same layers, the same parameters
(parameter counts with 1000 classes equal Keras Applications'; tests/test_applications.py
checks them) and, for every layer with weights, Keras' own layer name, so Keras Applications'
ImageNet `.h5` files (full and notop) load by layer name. Only the final softmax differs: it is
a separate float32 Activation ["probabilities"] (mixed-precision safe), since Keras' "predictions"
is the Dense layer itself in most families. The registry's `head=` lists the layers whose shapes
follow num_classes.

Heads (layer names; * = depends on num_classes; `dropout` defaults to Keras' top dropout):
* resnet*, resnet*_v2, densenet*, xception, inception_v3, inception_resnet_v2, mobilenet_v2,
  nasnet_*: global average pooling ["avg_pool"], optional dropout ["head_dropout"], Dense
  ["predictions"*].
* efficientnet_b*, efficientnet_v2_*: ["avg_pool"], dropout ["top_dropout"], Dense ["predictions"*].
* vgg16/19: Flatten ["flatten"], Dense 4096 ReLU ["fc1"], ["fc2"], optional dropout
  ["head_dropout"], Dense ["predictions"*]. The Flatten makes fc1 depend on the input size: the
  ImageNet full file fits 224x224 only (its notop file fits any size).
* mobilenet: pooling ["avg_pool", keepdims], dropout ["dropout"], 1x1 Conv2D ["conv_preds"*],
  Reshape ["reshape_2"].
* mobilenet_v3_*: pooling ["avg_pool", keepdims], 1x1 Conv2D with bias ["conv_2"] + hard-swish
  ["conv_2_activation"], dropout ["dropout"], 1x1 Conv2D ["logits"*], Flatten ["flatten"].
* convnext_*: pooling ["<name>_head_gap"], LayerNorm ["<name>_head_layernorm"], optional dropout
  ["head_dropout"], Dense ["<name>_head_dense"*]. Keras' include_top=False ConvNeXt ends in an
  extra (auto-named) LayerNorm applied *before* pooling; we branch off before it, so it is not
  part of our models (its weights in the notop file are unused).

Preprocessing (the leading `Normalize`, inputs are raw RGB pixels 0..255) is exactly what Keras
Applications' `preprocess_input` does for the family:
* caffe, RGB->BGR then minus the BGR ImageNet mean, no scaling (CAFFE_BGR): vgg16/19, resnet50/101/152.
* tf, x / 127.5 - 1 (SYMMETRIC_UNIT_SCALE): xception, inception_v3, inception_resnet_v2,
  mobilenet, mobilenet_v2, nasnet_*, resnet*_v2.
* torch, x / 255 then ImageNet mean/std (IMAGENET_MEAN_STD): densenet*.
* identity (IDENTITY): mobilenet_v3_*, efficientnet_b*, efficientnet_v2_*, convnext_*; their Keras
  models preprocess themselves (Rescaling / Normalization layers inside the backbone).
  EfficientNet B* caveat for weight loading: Keras adds a Rescaling(1/sqrt(IMAGENET_STDDEV_RGB))
  after its "normalization" layer only when built with weights="imagenet" (the .h5 stores the
  std as the "variance"); built with weights=None, ours lacks it, so after loading the ImageNet
  .h5 that layer's variance must be squared to get (x/255 - mean) / std (the weights rows say
  "post_load": "square_normalization_variance").

features_only pyramid: "Pk" is the last feature map at stride 2**k (the tensor that feeds the
next stride-2 stage; the backbone's final feature map for P5). Taps ("in:X" = the input tensor
of layer X; "in:MaxPooling2D#i" = of the i-th MaxPooling2D, for stems whose layers are
auto-named; "final" = the backbone's final feature map):
* vgg16: P1 block2_conv2, P2 block3_conv3, P3 block4_conv3, P4 block5_conv3, P5 block5_pool
  (vgg19: block3_conv4, block4_conv4, block5_conv4). The stride-1 block1 is not a level.
* resnet50/101/152: P1 conv1_relu, P2 conv2_block3_out, P3 conv3_block{4,4,8}_out,
  P4 conv4_block{6,23,36}_out, P5 conv5_block3_out.
* resnet50/101/152_v2 (stride 2 in each stack's last block): P1 conv1_conv,
  P2 conv2_block3_1_relu, P3 conv3_block{4,4,8}_1_relu, P4 conv4_block{6,23,36}_1_relu, P5 post_relu.
* densenet121/169/201: P1 conv1_relu, P2 pool2_conv, P3 pool3_conv, P4 pool4_conv, P5 relu.
* mobilenet: P1..P5 conv_pw_{1,3,5,11,13}_relu.
* mobilenet_v2: P1 block_1_expand_relu, P2 block_3_expand_relu, P3 block_6_expand_relu,
  P4 block_13_expand_relu, P5 out_relu.
* mobilenet_v3_small: P1..P4 in:expanded_conv_{,1_,3_,8_}depthwise_pad, P5 final.
* mobilenet_v3_large: P1..P4 in:expanded_conv_{1,3,6,12}_depthwise_pad, P5 final.
* efficientnet_b*: P1 block2a_expand_activation, P2 block3a_expand_activation,
  P3 block4a_expand_activation, P4 block6a_expand_activation, P5 top_activation.
* efficientnet_v2_* (fused stages first): P1 in:block2a_expand_conv, P2 in:block3a_expand_conv,
  P3 block4a_expand_activation, P4 block6a_expand_activation, P5 top_activation.
* convnext_* (4x4 stem: no P1): P2..P4 in:<name>_downsampling_block_{0,1,2}, P5 the last
  stage's output.
* xception: P1..P4 block{2,3,4,13}_sepconv2_bn, P5 block14_sepconv2_act.
* inception_v3: P1 in:MaxPooling2D#0, P2 in:MaxPooling2D#1, P3 mixed2, P4 mixed7, P5 mixed10.
* inception_resnet_v2: P1 in:MaxPooling2D#0, P2 in:MaxPooling2D#1, P3 block35_10_ac,
  P4 block17_20_ac, P5 conv_7b_ac.
* nasnet_mobile: P1 stem_bn1, P2 reduction_concat_stem_1, P3 normal_concat_3, P4 normal_concat_8,
  P5 final; nasnet_large: P3 normal_concat_5, P4 normal_concat_12, otherwise the same.
Xception, Inception and NASNet use "valid" convolutions, so their maps are a little smaller than
input / 2**k (InceptionV3 at 224: 109, 52, 25, 12, 5 instead of 112, 56, 28, 14, 7). So that a
U-Net or an FPN can merge the levels, with a static input size their levels are zero-padded
(symmetrically, extra row/column at the bottom/right) to ceil(input / 2**k) ["P<k>_align"]:
a valid convolution's map covers the interior of the image, so padding puts every cell where
its receptive field is. Their P5 therefore differs from the include_top=False output by a zero
border (its mean is the classifier's pooled feature scaled by the valid fraction of the area).
"""
from __future__ import annotations

import math

from zoo.lazy import LazyModule, keras, layers
from zoo.registry import register

blocks = LazyModule("zoo.models.layers")  # Keras layer classes: imported when a model is built

# family -> (preprocessing, head kind, dropout layer name, pad levels to input / 2**k)
_FAMILIES = {
    "vgg": ("caffe", "vgg", "head_dropout", False),
    "resnet": ("caffe", "gap", "head_dropout", False),
    "resnet_v2": ("tf", "gap", "head_dropout", False),
    "densenet": ("torch", "gap", "head_dropout", False),
    "xception": ("tf", "gap", "head_dropout", True),
    "inception_v3": ("tf", "gap", "head_dropout", True),
    "inception_resnet_v2": ("tf", "gap", "head_dropout", True),
    "nasnet": ("tf", "gap", "head_dropout", True),
    "mobilenet": ("tf", "mobilenet", "dropout", False),
    "mobilenet_v2": ("tf", "gap", "head_dropout", False),
    "mobilenet_v3": ("identity", "mobilenet_v3", "dropout", False),
    "efficientnet": ("identity", "gap", "top_dropout", False),
    "efficientnet_v2": ("identity", "gap", "top_dropout", False),
    "convnext": ("identity", "convnext", "head_dropout", False),
}
_MOBILENET_V3_LAST_POINT = {"mobilenet_v3_small": 1024, "mobilenet_v3_large": 1280}


def _resnet_taps(p3, p4):
    return {"P1": "conv1_relu", "P2": "conv2_block3_out", "P3": f"conv3_block{p3}_out",
            "P4": f"conv4_block{p4}_out", "P5": "conv5_block3_out"}


def _resnet_v2_taps(p3, p4):
    return {"P1": "conv1_conv", "P2": "conv2_block3_1_relu", "P3": f"conv3_block{p3}_1_relu",
            "P4": f"conv4_block{p4}_1_relu", "P5": "post_relu"}


def _vgg_taps(last):
    return {"P1": "block2_conv2", "P2": f"block3_conv{last}", "P3": f"block4_conv{last}",
            "P4": f"block5_conv{last}", "P5": "block5_pool"}


def _nasnet_taps(p3, p4):
    return {"P1": "stem_bn1", "P2": "reduction_concat_stem_1", "P3": f"normal_concat_{p3}",
            "P4": f"normal_concat_{p4}", "P5": None}


def _convnext_taps(name):
    return {"P2": f"in:{name}_downsampling_block_0", "P3": f"in:{name}_downsampling_block_1",
            "P4": f"in:{name}_downsampling_block_2", "P5": None}


_DENSENET_TAPS = {"P1": "conv1_relu", "P2": "pool2_conv", "P3": "pool3_conv", "P4": "pool4_conv", "P5": "relu"}
_EFFNET_TAPS = {"P1": "block2a_expand_activation", "P2": "block3a_expand_activation",
                "P3": "block4a_expand_activation", "P4": "block6a_expand_activation", "P5": "top_activation"}
_EFFNET_V2_TAPS = {"P1": "in:block2a_expand_conv", "P2": "in:block3a_expand_conv",
                   "P3": "block4a_expand_activation", "P4": "block6a_expand_activation", "P5": "top_activation"}
_INCEPTION_STEM = {"P1": "in:MaxPooling2D#0", "P2": "in:MaxPooling2D#1"}

_RESNET = 'He et al. 2016, "Deep Residual Learning for Image Recognition", ResNet-{} (Keras Applications).'
_RESNET_V2 = 'He et al. 2016, "Identity Mappings in Deep Residual Networks", ResNet-{} v2 (Keras Applications).'
_VGG = ('Simonyan & Zisserman 2015, "Very Deep Convolutional Networks for Large-Scale Image Recognition", '
        'VGG-{} (Keras Applications).')
_DENSENET = 'Huang et al. 2017, "Densely Connected Convolutional Networks", DenseNet-{} (Keras Applications).'
_NASNET = ('Zoph et al. 2018, "Learning Transferable Architectures for Scalable Image Recognition", '
           'NASNet-A {} (Keras Applications).')
_EFFNET = ('Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", '
           '{} (Keras Applications).')
_EFFNET_V2 = 'Tan & Le 2021, "EfficientNetV2: Smaller Models and Faster Training", {} (Keras Applications).'
_CONVNEXT = 'Liu et al. 2022, "A ConvNet for the 2020s", ConvNeXt-{} (Keras Applications).'
_MOBILENET_V3 = 'Howard et al. 2019, "Searching for MobileNetV3", MobileNetV3-{} (Keras Applications, alpha 1.0).'

# zoo name -> (Keras constructor, family, default input size, default dropout (Keras' top),
#              citation, pyramid taps). A tap is a layer name (its output), "in:<layer name>"
# (that layer's input tensor), "in:<LayerClass>#<i>" (the input of the i-th layer of that class)
# or None (the backbone's final feature map).
_SPECS = {
    "vgg16": ("VGG16", "vgg", 224, 0.0, _VGG.format(16), _vgg_taps(3)),
    "vgg19": ("VGG19", "vgg", 224, 0.0, _VGG.format(19), _vgg_taps(4)),
    "resnet50": ("ResNet50", "resnet", 224, 0.0, _RESNET.format(50), _resnet_taps(4, 6)),
    "resnet101": ("ResNet101", "resnet", 224, 0.0, _RESNET.format(101), _resnet_taps(4, 23)),
    "resnet152": ("ResNet152", "resnet", 224, 0.0, _RESNET.format(152), _resnet_taps(8, 36)),
    "resnet50_v2": ("ResNet50V2", "resnet_v2", 224, 0.0, _RESNET_V2.format(50), _resnet_v2_taps(4, 6)),
    "resnet101_v2": ("ResNet101V2", "resnet_v2", 224, 0.0, _RESNET_V2.format(101), _resnet_v2_taps(4, 23)),
    "resnet152_v2": ("ResNet152V2", "resnet_v2", 224, 0.0, _RESNET_V2.format(152), _resnet_v2_taps(8, 36)),
    "densenet121": ("DenseNet121", "densenet", 224, 0.0, _DENSENET.format(121), _DENSENET_TAPS),
    "densenet169": ("DenseNet169", "densenet", 224, 0.0, _DENSENET.format(169), _DENSENET_TAPS),
    "densenet201": ("DenseNet201", "densenet", 224, 0.0, _DENSENET.format(201), _DENSENET_TAPS),
    "xception": ("Xception", "xception", 299, 0.0,
                 'Chollet 2017, "Xception: Deep Learning with Depthwise Separable Convolutions" (Keras Applications).',
                 {"P1": "block2_sepconv2_bn", "P2": "block3_sepconv2_bn", "P3": "block4_sepconv2_bn",
                  "P4": "block13_sepconv2_bn", "P5": "block14_sepconv2_act"}),
    "inception_v3": ("InceptionV3", "inception_v3", 299, 0.0,
                     'Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer Vision", '
                     'Inception-v3 (Keras Applications).',
                     {**_INCEPTION_STEM, "P3": "mixed2", "P4": "mixed7", "P5": "mixed10"}),
    "inception_resnet_v2": ("InceptionResNetV2", "inception_resnet_v2", 299, 0.0,
                            'Szegedy et al. 2017, "Inception-v4, Inception-ResNet and the Impact of Residual '
                            'Connections on Learning", Inception-ResNet-v2 (Keras Applications).',
                            {**_INCEPTION_STEM, "P3": "block35_10_ac", "P4": "block17_20_ac", "P5": "conv_7b_ac"}),
    "nasnet_mobile": ("NASNetMobile", "nasnet", 224, 0.0, _NASNET.format("Mobile (4 @ 1056)"), _nasnet_taps(3, 8)),
    "nasnet_large": ("NASNetLarge", "nasnet", 331, 0.0, _NASNET.format("Large (6 @ 4032)"), _nasnet_taps(5, 12)),
    "mobilenet": ("MobileNet", "mobilenet", 224, 0.001,
                  'Howard et al. 2017, "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision '
                  'Applications" (Keras Applications, alpha 1.0).',
                  {f"P{k}": f"conv_pw_{block}_relu" for k, block in zip(range(1, 6), (1, 3, 5, 11, 13))}),
    "mobilenet_v2": ("MobileNetV2", "mobilenet_v2", 224, 0.0,
                     'Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks" '
                     '(Keras Applications, alpha 1.0).',
                     {"P1": "block_1_expand_relu", "P2": "block_3_expand_relu", "P3": "block_6_expand_relu",
                      "P4": "block_13_expand_relu", "P5": "out_relu"}),
    "mobilenet_v3_small": ("MobileNetV3Small", "mobilenet_v3", 224, 0.2, _MOBILENET_V3.format("Small"), {
        "P1": "in:expanded_conv_depthwise_pad", "P2": "in:expanded_conv_1_depthwise_pad",
        "P3": "in:expanded_conv_3_depthwise_pad", "P4": "in:expanded_conv_8_depthwise_pad", "P5": None}),
    "mobilenet_v3_large": ("MobileNetV3Large", "mobilenet_v3", 224, 0.2, _MOBILENET_V3.format("Large"), {
        "P1": "in:expanded_conv_1_depthwise_pad", "P2": "in:expanded_conv_3_depthwise_pad",
        "P3": "in:expanded_conv_6_depthwise_pad", "P4": "in:expanded_conv_12_depthwise_pad", "P5": None}),
    **{f"efficientnet_b{i}": (f"EfficientNetB{i}", "efficientnet", size, dropout, _EFFNET.format(f"B{i}"), _EFFNET_TAPS)
       for i, (size, dropout) in enumerate([(224, 0.2), (240, 0.2), (260, 0.3), (300, 0.3),
                                            (380, 0.4), (456, 0.4), (528, 0.5), (600, 0.5)])},
    **{f"efficientnet_v2_{v.lower()}": (f"EfficientNetV2{v}", "efficientnet_v2", size, 0.2,
                                        _EFFNET_V2.format(v), _EFFNET_V2_TAPS)
       for v, size in [("B0", 224), ("B1", 240), ("B2", 260), ("B3", 300), ("S", 384), ("M", 480), ("L", 480)]},
    **{f"convnext_{size.lower()}": (f"ConvNeXt{size}", "convnext", 224, 0.0, _CONVNEXT.format(size),
                                    _convnext_taps(f"convnext_{size.lower()}"))
       for size in ("Tiny", "Small", "Base", "Large", "XLarge")},
}

APPLICATIONS = {name: spec[0] for name, spec in _SPECS.items()}  # zoo name -> keras.applications.X


def _head_names(name):
    """The layers whose shapes follow num_classes (the registry's `head=`)."""
    head = _FAMILIES[_SPECS[name][1]][1]
    return {"mobilenet": ("conv_preds",), "mobilenet_v3": ("logits",),
            "convnext": (f"{name}_head_dense",)}.get(head, ("predictions",))


def _preprocessing(kind):
    return {"caffe": blocks.CAFFE_BGR, "tf": blocks.SYMMETRIC_UNIT_SCALE,
            "torch": blocks.IMAGENET_MEAN_STD, "identity": blocks.IDENTITY}[kind]


def _tap(backbone, tap, final):
    if tap is None:
        return final
    if not tap.startswith("in:"):
        return backbone.get_layer(tap).output
    target = tap[3:]
    if "#" in target:
        kind, index = target.split("#")
        return [layer for layer in backbone.layers if type(layer).__name__ == kind][int(index)].input
    return backbone.get_layer(target).input


def _align(x, level, input_shape):
    """Zero-pad (or crop) a "valid"-padding family's level to ceil(input / 2**level)."""
    height, width = input_shape[0], input_shape[1]
    if height is None or width is None:
        return x
    target = (math.ceil(height / 2**level), math.ceil(width / 2**level))
    got = tuple(x.shape[1:3])
    if got == target:
        return x
    pad = [max(t - g, 0) for t, g in zip(target, got)]
    crop = [max(g - t, 0) for t, g in zip(target, got)]
    name = f"P{level}_align"
    if any(pad):
        x = layers.ZeroPadding2D(tuple((p // 2, p - p // 2) for p in pad),
                                 name=name if not any(crop) else f"{name}_pad")(x)
    if any(crop):
        x = layers.Cropping2D(tuple((c // 2, c - c // 2) for c in crop),
                              name=name if not any(pad) else f"{name}_crop")(x)
    return x


def _softmax(x):
    return layers.Activation("softmax", dtype="float32", name="probabilities")(x)


def _build(name, input_shape, num_classes, features_only, dropout):
    application, family, _, _, _, taps = _SPECS[name]
    preprocessing, head, dropout_name, align = _FAMILIES[family]
    input_shape = tuple(input_shape)
    inputs = keras.Input(shape=input_shape, name="image")
    x = blocks.Normalize(**_preprocessing(preprocessing), name="normalize")(inputs)
    backbone = getattr(keras.applications, application)(
        include_top=False, weights=None, input_tensor=x, input_shape=input_shape
    )
    features = backbone.output
    if head == "convnext":
        # Keras' include_top=False ConvNeXt ends in a LayerNorm its top does not use
        # (the top pools, then normalizes): take the last stage's output.
        features = backbone.layers[-1].input
    if features_only:
        pyramid = {level: _tap(backbone, tap, features) for level, tap in taps.items()}
        if align:
            pyramid = {level: _align(x, int(level[1:]), input_shape) for level, x in pyramid.items()}
        return blocks.feature_model(inputs, pyramid, name)

    x = features
    if head == "gap":
        outputs = blocks.classifier_head(x, num_classes, dropout, name="probabilities",
                                         dense_name="predictions", dropout_name=dropout_name)
    elif head == "vgg":
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc1")(x)
        x = layers.Dense(4096, activation="relu", name="fc2")(x)
        outputs = blocks.classifier_head(x, num_classes, dropout, name="probabilities",
                                         dense_name="predictions", dropout_name=dropout_name)
    elif head == "convnext":
        x = layers.GlobalAveragePooling2D(name=f"{name}_head_gap")(x)
        x = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_head_layernorm")(x)
        outputs = blocks.classifier_head(x, num_classes, dropout, name="probabilities",
                                         dense_name=f"{name}_head_dense", dropout_name=dropout_name)
    elif head == "mobilenet":
        x = layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
        if dropout:
            x = layers.Dropout(dropout, name=dropout_name)(x)
        x = layers.Conv2D(num_classes, 1, padding="same", name="conv_preds")(x)
        outputs = _softmax(layers.Reshape((num_classes,), name="reshape_2")(x))
    else:  # mobilenet_v3
        x = layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
        x = layers.Conv2D(_MOBILENET_V3_LAST_POINT[name], 1, padding="same", name="conv_2")(x)
        x = layers.Activation("hard_swish", name="conv_2_activation")(x)
        if dropout:
            x = layers.Dropout(dropout, name=dropout_name)(x)
        x = layers.Conv2D(num_classes, 1, padding="same", name="logits")(x)
        outputs = _softmax(layers.Flatten(name="flatten")(x))
    return keras.Model(inputs, outputs, name=name)


def _make_builder(name):
    _, _, size, default_dropout, citation, _ = _SPECS[name]
    shape = (size, size, 3)

    def builder(input_shape=shape, num_classes=1000, features_only=False, dropout=default_dropout):
        return _build(name, input_shape, num_classes, features_only, dropout)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = citation
    builder.__module__ = __name__
    return register(task="classification", input_shape=shape, head=_head_names(name))(builder)


for _name in _SPECS:
    globals()[_name] = _make_builder(_name)
