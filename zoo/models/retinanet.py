"""RetinaNet (Lin et al. 2017, "Focal Loss for Dense Object Detection"): a classifier backbone's
feature pyramid, an FPN on levels P3-P7 and two shared conv subnets (class, box) per level.

* Backbone: any registered classifier with `features_only=True` (same raw-pixel input 0..255,
  normalization inside); the FPN reads its levels C<min_level>..C5 (C5 = its top level).
* FPN (sec. 4 and footnote 2 of the paper): 1x1 lateral convs, nearest-neighbour top-down
  upsampling and addition, a 3x3 output conv per level; P6 = 3x3/2 conv on C5, as in the
  paper (torchvision reads P5, which changes the parameter count, see below);
  P7 = 3x3/2 conv on ReLU(P6). All `fpn_channels` wide (256 in the paper).
* Heads, weights shared across levels: `head_convs` 3x3 convs + ReLU (4 x 256 in the paper,
  Gaussian init sigma 0.01), then a 3x3 conv to A * C class logits (bias initialized to
  -log((1 - pi) / pi), pi = `prior_probability` = 0.01) or A * 4 box deltas; A =
  `num_scales * len(aspect_ratios)` anchors per location (3 x 3 = 9).
* Output: one float32 tensor (batch, num_anchors, 4 + num_classes) = [ty, tx, th, tw, class
  logits...] for every anchor, in `zoo.data.boxes.AnchorConfig.anchors()` order. The last
  layer, `AnchorOutputs` ("detections"), records the anchor grid (image size, levels, sizes,
  ratios) in its config, so a saved `.keras` model is enough to decode its own outputs.
  Decoding, NMS, the focal loss and target assignment live in the `zoo.tasks.detection` package.

Parameter count of `retinanet_resnet50` with 80 classes: 38,048,372 (`count_params()`, BN moving
statistics included). torchvision's `retinanet_resnet50_fpn` reports 34,014,999; the difference
is exact: -228,195 (80 classes instead of its 91), +4,128,768 (P6 from C5 (2048 channels), as
in the paper and Detectron2, where torchvision reads P5 (256)), +106,240 (Keras counts BatchNorm
scale, offset and moving statistics; torchvision's FrozenBatchNorm2d keeps them as buffers),
+26,560 (Keras Applications' ResNet50 convolutions carry biases).

Options beyond the paper, off by default: `head_norm` (GroupNorm, 32 groups, after each tower
conv, as torchvision's RetinaNet v2 / FCOS; it speeds up training from scratch) and
`backbone_bn_momentum` (override the backbone's BatchNorm momentum, e.g. Keras Applications'
0.999 is slow to track in short runs).

The anchor grid has one owner, the built model: the detection task reads it from the
`AnchorOutputs` layer (`Task.attach`) to match training targets to exactly these anchors.
"""
from __future__ import annotations

import math


from zoo.lazy import LazyModule, keras, layers
from zoo.registry import register

zoo_layers = LazyModule("zoo.models.layers")  # Keras layer classes: imported when a model is built


def _head_conv(filters, name, bias=0.0):
    return layers.Conv2D(filters, 3, padding="same", name=name,
                         kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                         bias_initializer=keras.initializers.Constant(bias))


def build_retinanet(name, input_shape, num_classes, backbone, backbone_weights, min_level,
                    max_level, fpn_channels, head_convs, anchor_size, num_scales, aspect_ratios,
                    prior_probability, backbone_bn_momentum=None, head_norm=False):
    aspect_ratios = [float(r) for r in aspect_ratios]
    if not 0 < prior_probability < 1:
        raise ValueError(f"prior_probability must be in (0, 1), got {prior_probability}")
    features = zoo_layers.backbone_pyramid(backbone, input_shape, backbone_weights)
    if backbone_bn_momentum is not None:  # e.g. 0.9 instead of Keras Applications' 0.999,
        for layer in features.layers:     # so moving statistics keep up in short trainings
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = float(backbone_bn_momentum)
    pyramid = features.output
    top = max(int(k[1:]) for k in pyramid)  # the backbone's top level (5 for ImageNet nets)
    if not min_level <= top <= max_level or f"P{min_level}" not in pyramid:
        raise ValueError(f"{name}: levels P{min_level}-P{max_level} need backbone {backbone} "
                         f"levels P{min_level}..P{top} (it has {', '.join(pyramid)})")
    height, width = input_shape[:2]
    if height % 2 ** top or width % 2 ** top:
        raise ValueError(f"{name}: input height and width must be multiples of {2 ** top}, "
                         f"got {height}x{width}")

    # FPN top-down pathway on the backbone's levels.
    laterals = {level: layers.Conv2D(fpn_channels, 1, name=f"fpn_lateral_p{level}")(pyramid[f"P{level}"])
                for level in range(min_level, top + 1)}
    merged = {top: laterals[top]}
    for level in range(top - 1, min_level - 1, -1):
        up = layers.UpSampling2D(2, interpolation="nearest", name=f"fpn_upsample_p{level + 1}")(merged[level + 1])
        merged[level] = layers.Add(name=f"fpn_merge_p{level}")([laterals[level], up])
    outputs = {level: layers.Conv2D(fpn_channels, 3, padding="same", name=f"fpn_output_p{level}")(x)
               for level, x in merged.items()}
    # Extra levels above the backbone: P6 from C5, then ReLU + stride-2 conv.
    x = pyramid[f"P{top}"]
    for level in range(top + 1, max_level + 1):
        if level > top + 1:
            x = layers.ReLU(name=f"fpn_relu_p{level - 1}")(x)
        x = layers.Conv2D(fpn_channels, 3, strides=2, padding="same", name=f"fpn_output_p{level}")(x)
        outputs[level] = x

    anchors = num_scales * len(aspect_ratios)
    class_tower = [_head_conv(fpn_channels, f"class_conv{i + 1}") for i in range(head_convs)]
    box_tower = [_head_conv(fpn_channels, f"box_conv{i + 1}") for i in range(head_convs)]
    class_out = _head_conv(anchors * num_classes, "class_logits",
                           bias=-math.log((1 - prior_probability) / prior_probability))
    box_out = _head_conv(anchors * 4, "box_deltas")
    if head_norm:  # GroupNorm (32 groups) after each tower conv, shared across levels
        if fpn_channels % 32:
            raise ValueError(f"{name}: head_norm needs fpn_channels divisible by 32, got {fpn_channels}")
        class_norms = [layers.GroupNormalization(32, name=f"class_gn{i + 1}") for i in range(head_convs)]
        box_norms = [layers.GroupNormalization(32, name=f"box_gn{i + 1}") for i in range(head_convs)]
    box_maps, class_maps = [], []
    for level in range(min_level, max_level + 1):
        c = b = outputs[level]
        for i, (conv_c, conv_b) in enumerate(zip(class_tower, box_tower)):
            c, b = conv_c(c), conv_b(b)
            if head_norm:
                c, b = class_norms[i](c), box_norms[i](b)
            c = layers.ReLU(name=f"class_relu{i + 1}_p{level}")(c)
            b = layers.ReLU(name=f"box_relu{i + 1}_p{level}")(b)
        class_maps.append(class_out(c))
        box_maps.append(box_out(b))
    detections = zoo_layers.AnchorOutputs(num_classes, (height, width), min_level, max_level, anchor_size,
                               num_scales, aspect_ratios, dtype="float32",
                               name="detections")(box_maps + class_maps)
    return keras.Model(features.input, detections, name=name)


@register(task="detection", input_shape=(640, 640, 3), head=("class_logits",))
def retinanet_resnet50(input_shape=(640, 640, 3), num_classes=80, backbone="resnet50",
                       backbone_weights=None, min_level=3, max_level=7, fpn_channels=256,
                       head_convs=4, anchor_size=4.0, num_scales=3,
                       aspect_ratios=(0.5, 1.0, 2.0), prior_probability=0.01,
                       backbone_bn_momentum=None, head_norm=False):
    """Lin et al. 2017, "Focal Loss for Dense Object Detection", RetinaNet ResNet-50-FPN (P3-P7, 9 anchors)."""
    return build_retinanet("retinanet_resnet50", input_shape, num_classes, backbone,
                           backbone_weights, min_level, max_level, fpn_channels, head_convs,
                           anchor_size, num_scales, aspect_ratios, prior_probability,
                           backbone_bn_momentum, head_norm)


@register(task="detection", input_shape=(128, 128, 3), head=("class_logits",))
def retinanet_small(input_shape=(128, 128, 3), num_classes=3, backbone="resnet18",
                    backbone_weights=None, min_level=2, max_level=5, fpn_channels=64,
                    head_convs=2, anchor_size=2.0, num_scales=3, aspect_ratios=(0.5, 1.0, 2.0),
                    prior_probability=0.01, backbone_bn_momentum=None, head_norm=True):
    """Lin et al. 2017, "Focal Loss for Dense Object Detection", RetinaNet sized for CPU (ResNet-18, P2-P5, 64-wide FPN, GN heads).

    For small images with small objects (the quickstart: 128 px, objects 5-56 px): P2 (stride 4)
    with anchors of side 2 x stride (8-13 px on P2 ... 64-101 px on P5), 2-conv heads with
    GroupNorm, which trains from scratch in minutes on a CPU.
    """
    return build_retinanet("retinanet_small", input_shape, num_classes, backbone,
                           backbone_weights, min_level, max_level, fpn_channels, head_convs,
                           anchor_size, num_scales, aspect_ratios, prior_probability,
                           backbone_bn_momentum, head_norm)
