"""The weights table: every pretrained weight the zoo knows, one row each.

Pure data: `zoo.registry` reads it when a model registers and turns the model's rows into
`WeightsSpec`s (`ModelEntry.pretrained[tag]`). The first row of a model is its default tag
(`pretrained=True`). See docs/weights.md.

Adding a weight the zoo trains: run `python benchmarks/make_pretrained.py RECIPE --tag TAG`;
it trains the recipe, writes `zoo/assets/weights/<model>.<tag>.weights.h5`, re-evaluates that
file and prints the row to paste into ZOO_WEIGHTS. tests/test_weights.py then checks the
file's checksum and re-measures the metric on every test run.

Row keys (ZOO_WEIGHTS):
  model, tag       the registry name and the weight's tag
  file | url       a package file under zoo/assets/weights/, or a URL (https:// or file://)
  sha256           of the file; checked before every use
  dataset          what it was trained / measured on
  input_size       the input shape it was trained at (H, W, C) or (T, H, W, C)
  num_classes      classes of its head
  preprocessing    what the model expects (every zoo model takes raw RGB pixels 0..255)
  metrics          the metrics measured on the recipe's eval split (`zoo evaluate`)
  tolerance        absolute tolerance of the re-measurement (tests/test_weights.py)
  recipe           the recipe that trained it and re-measures it
  class_names      the name of each class index, as the recipe's training split names them
                   (`zoo predict MODEL.TAG` prints them; tests/test_predict.py checks them)
  model_kwargs     builder arguments of the recipe's `model:` section besides the name
  measured         who measured the metric, with what
"""
from __future__ import annotations

ZOO_WEIGHTS = [
    {
        "model": "digits_cnn",
        "tag": "digits",
        "file": "digits_cnn.digits.weights.h5",
        "sha256": "cae581defc62103610516e511aab2c95c52a9b5abd556a96766c17a4bdc8ecf4",
        "dataset": ("UCI 8x8 handwritten digits (embedded; data.source=digits), trained on 1,293 train "
                    "images (144 held out to validate), test split, 360 images"),
        "input_size": (8, 8, 3),
        "num_classes": 10,
        "preprocessing": "raw RGB pixels 0..255; the model scales x / 255 itself",
        "metrics": {"accuracy": 0.9944, "top5_accuracy": 1.0},
        "tolerance": 0.01,
        "recipe": "digits_cnn",
        "class_names": ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"),
        "model_kwargs": {},
        "measured": "benchmarks/make_pretrained.py, seed 0, CPU, Keras 3.15.1 / TF 2.21.0, 2026-12-06",
    },
    {
        "model": "cnn_lstm",
        "tag": "moving_shapes",
        "file": "cnn_lstm.moving_shapes.weights.h5",
        "sha256": "42811d439d26ac9bfc0a42bf355278e7317b1e44edbd14819d0eedf6419e3139",
        "dataset": "synthetic:moving_shapes (left/right motion), test split, 500 clips",
        "input_size": (8, 64, 64, 3),
        "num_classes": 2,
        "preprocessing": "raw RGB pixels 0..255; the model normalizes them itself",
        "metrics": {"accuracy": 1.0},
        "tolerance": 0.01,
        "recipe": "moving_shapes_cnn_lstm",
        "class_names": ("left", "right"),
        "model_kwargs": {},
        "measured": "benchmarks/make_pretrained.py, seed 0, CPU, Keras 3.15.1 / TF 2.21.0, 2026-11-25",
    },
    {
        "model": "unet_small",
        "tag": "shapes",
        "file": "unet_small.shapes.weights.h5",
        "sha256": "ed8917590141ac0f019876922f5a9c5f770812a39a4104c47d14a572894f5035",
        "dataset": "synthetic:shapes_segmentation, test split, 500 images",
        "input_size": (64, 64, 3),
        "num_classes": 4,
        "preprocessing": "raw RGB pixels 0..255; the model normalizes them itself",
        "metrics": {"mIoU": 0.8872, "pixel_accuracy": 0.987, "iou/background": 0.9929,
                    "iou/circle": 0.9187, "iou/square": 0.8384, "iou/triangle": 0.7987},
        "tolerance": 0.01,
        "recipe": "shapes_unet",
        "class_names": ("background", "circle", "square", "triangle"),
        "model_kwargs": {},
        "measured": "benchmarks/make_pretrained.py, seed 0, CPU, Keras 3.15.1 / TF 2.21.0, 2026-11-25",
    },
    {
        "model": "retinanet_small",
        "tag": "shapes",
        "file": "retinanet_small.shapes.weights.h5",
        "sha256": "8fac2df71ee36ab747a62e58b30e09e3bc3e08c9afd14bf5452bd03c1653a09b",
        "dataset": "synthetic:shapes_detection, test split, 500 images",
        "input_size": (128, 128, 3),
        "num_classes": 3,
        "preprocessing": "raw RGB pixels 0..255; the model normalizes them itself",
        "metrics": {"mAP": 0.7525, "mAP50": 0.9565, "mAP75": 0.8875, "mAP_small": 0.7409,
                    "mAP_medium": 0.7949, "AP/circle": 0.8401, "AP/square": 0.7404,
                    "AP/triangle": 0.6771},
        "tolerance": 0.01,
        "recipe": "shapes_retinanet",
        "class_names": ("circle", "square", "triangle"),
        "model_kwargs": {},
        "measured": ("benchmarks/make_pretrained.py --float16 (stored as float16; 23 MB), seed 0, "
                     "CPU, Keras 3.15.1 / TF 2.21.0, 2026-11-25"),
    },
]

# ImageNet-1k weights of Keras Applications (every classifier of keras.applications, Keras 3.15),
# loaded by layer name into the zoo's wrappers (zoo/models/applications.py). URLs and hashes
# are those of keras.applications (keras/src/applications/*.py: WEIGHTS_PATH / WEIGHTS_HASHES /
# the `file_hash=` of its `get_file` calls): "md5" or "sha256" as Keras publishes it
# (tests/test_applications.py checks them against the installed Keras source). MobileNet's and
# MobileNetV2's files have no published checksum (Keras downloads them unverified): those rows
# have none. "notop" is the include_top=False file, used for features_only models (encoders,
# detector backbones); the full file for classifiers (its head is dropped when num_classes
# differs). "post_load": a fix the loader applies after loading the legacy file
# ("square_normalization_variance": EfficientNet B*, see zoo/models/applications.py).
# Metrics: top-1 ("accuracy") / top-5 as quoted from the keras.io Keras Applications table
# (keras.io/api/applications) and, for MobileNetV3, from the keras.applications.MobileNetV3
# docstring (top-1 only); quoted, not re-measured here (ImageNet needs a manual download).
# ConvNeXt: none, as the copy of that table checked offline had no ConvNeXt rows.
IMAGENET = "ImageNet-1k (ILSVRC 2012), validation split, 50,000 images"
KERAS_MEASURED = "published by Keras Applications; not re-measured here"
_KA = "https://storage.googleapis.com/tensorflow/keras-applications/"
_KA_EFFNET = "https://storage.googleapis.com/keras-applications/"
_CAFFE = "caffe: RGB -> BGR, minus the ImageNet BGR mean (Normalize inside the model); feed raw RGB 0..255"
_TF = "tf: x / 127.5 - 1 (Normalize inside the model); feed raw RGB 0..255"
_TORCH = ("torch: x / 255, minus the ImageNet mean, divided by the ImageNet std (Normalize inside the model); "
          "feed raw RGB 0..255")
_SELF = "Keras' own Rescaling / Normalization layers inside the model; feed raw RGB 0..255"

KERAS_APPLICATIONS = [
    {
        "model": "vgg16", "application": "VGG16", "input_size": (224, 224, 3),
        "url": _KA + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5",
        "md5": "64373286793e3c8b2b4e3219cbf3544b",
        "notop_url": _KA + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "notop_md5": "6d6bbae143d832006294945121d1f1fc",
        "preprocessing": _CAFFE, "metrics": {"accuracy": 0.713, "top5_accuracy": 0.901},
    },
    {
        "model": "vgg19", "application": "VGG19", "input_size": (224, 224, 3),
        "url": _KA + "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels.h5",
        "md5": "cbe5617147190e668d6c5d5026f83318",
        "notop_url": _KA + "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "notop_md5": "253f8cb515780f3b799900260a226db6",
        "preprocessing": _CAFFE, "metrics": {"accuracy": 0.713, "top5_accuracy": 0.9},
    },
    {
        "model": "resnet50", "application": "ResNet50", "input_size": (224, 224, 3),
        "url": _KA + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5",
        "md5": "2cb95161c43110f7111970584f804107",
        "notop_url": _KA + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "notop_md5": "4d473c1dd8becc155b73f8504c6f6626",
        "preprocessing": _CAFFE, "metrics": {"accuracy": 0.749, "top5_accuracy": 0.921},
    },
    {
        "model": "resnet101", "application": "ResNet101", "input_size": (224, 224, 3),
        "url": _KA + "resnet/resnet101_weights_tf_dim_ordering_tf_kernels.h5",
        "md5": "f1aeb4b969a6efcfb50fad2f0c20cfc5",
        "notop_url": _KA + "resnet/resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "notop_md5": "88cf7a10940856eca736dc7b7e228a21",
        "preprocessing": _CAFFE, "metrics": {"accuracy": 0.764, "top5_accuracy": 0.928},
    },
    {
        "model": "resnet152", "application": "ResNet152", "input_size": (224, 224, 3),
        "url": _KA + "resnet/resnet152_weights_tf_dim_ordering_tf_kernels.h5",
        "md5": "100835be76be38e30d865e96f2aaae62",
        "notop_url": _KA + "resnet/resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "notop_md5": "ee4c566cf9a93f14d82f913c2dc6dd0c",
        "preprocessing": _CAFFE, "metrics": {"accuracy": 0.766, "top5_accuracy": 0.931},
    },
    {
        "model": "resnet50_v2", "application": "ResNet50V2", "input_size": (224, 224, 3),
        "url": _KA + "resnet/resnet50v2_weights_tf_dim_ordering_tf_kernels.h5",
        "md5": "3ef43a0b657b3be2300d5770ece849e0",
        "notop_url": _KA + "resnet/resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "notop_md5": "fac2f116257151a9d068a22e544a4917",
        "preprocessing": _TF, "metrics": {"accuracy": 0.76, "top5_accuracy": 0.93},
    },
    {
        "model": "resnet101_v2", "application": "ResNet101V2", "input_size": (224, 224, 3),
        "url": _KA + "resnet/resnet101v2_weights_tf_dim_ordering_tf_kernels.h5",
        "md5": "6343647c601c52e1368623803854d971",
        "notop_url": _KA + "resnet/resnet101v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "notop_md5": "c0ed64b8031c3730f411d2eb4eea35b5",
        "preprocessing": _TF, "metrics": {"accuracy": 0.772, "top5_accuracy": 0.938},
    },
    {
        "model": "resnet152_v2", "application": "ResNet152V2", "input_size": (224, 224, 3),
        "url": _KA + "resnet/resnet152v2_weights_tf_dim_ordering_tf_kernels.h5",
        "md5": "a49b44d1979771252814e80f8ec446f9",
        "notop_url": _KA + "resnet/resnet152v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "notop_md5": "ed17cf2e0169df9d443503ef94b23b33",
        "preprocessing": _TF, "metrics": {"accuracy": 0.78, "top5_accuracy": 0.942},
    },
    {
        "model": "densenet121", "application": "DenseNet121", "input_size": (224, 224, 3),
        "url": _KA + "densenet/densenet121_weights_tf_dim_ordering_tf_kernels.h5",
        "md5": "9d60b8095a5708f2dcce2bca79d332c7",
        "notop_url": _KA + "densenet/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "notop_md5": "30ee3e1110167f948a6b9946edeeb738",
        "preprocessing": _TORCH, "metrics": {"accuracy": 0.75, "top5_accuracy": 0.923},
    },
    {
        "model": "densenet169", "application": "DenseNet169", "input_size": (224, 224, 3),
        "url": _KA + "densenet/densenet169_weights_tf_dim_ordering_tf_kernels.h5",
        "md5": "d699b8f76981ab1b30698df4c175e90b",
        "notop_url": _KA + "densenet/densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "notop_md5": "b8c4d4c20dd625c148057b9ff1c1176b",
        "preprocessing": _TORCH, "metrics": {"accuracy": 0.762, "top5_accuracy": 0.932},
    },
    {
        "model": "densenet201", "application": "DenseNet201", "input_size": (224, 224, 3),
        "url": _KA + "densenet/densenet201_weights_tf_dim_ordering_tf_kernels.h5",
        "md5": "1ceb130c1ea1b78c3bf6114dbdfd8807",
        "notop_url": _KA + "densenet/densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "notop_md5": "c13680b51ded0fb44dff2d8f86ac8bb1",
        "preprocessing": _TORCH, "metrics": {"accuracy": 0.773, "top5_accuracy": 0.936},
    },
    {
        "model": "xception", "application": "Xception", "input_size": (299, 299, 3),
        "url": _KA + "xception/xception_weights_tf_dim_ordering_tf_kernels.h5",
        "md5": "0a58e3b7378bc2990ea3b43d5981f1f6",
        "notop_url": _KA + "xception/xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "notop_md5": "b0042744bf5b25fce3cb969f33bebb97",
        "preprocessing": _TF, "metrics": {"accuracy": 0.79, "top5_accuracy": 0.945},
    },
    {
        "model": "inception_v3", "application": "InceptionV3", "input_size": (299, 299, 3),
        "url": _KA + "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
        "md5": "9a0d58056eeedaa3f26cb7ebd46da564",
        "notop_url": _KA + "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "notop_md5": "bcbd6486424b2319ff4ef7d526e38f63",
        "preprocessing": _TF, "metrics": {"accuracy": 0.779, "top5_accuracy": 0.937},
    },
    {
        "model": "inception_resnet_v2", "application": "InceptionResNetV2", "input_size": (299, 299, 3),
        "url": _KA + "inception_resnet_v2/inception_resnet_v2_weights_tf_dim_ordering_tf_kernels.h5",
        "md5": "e693bd0210a403b3192acc6073ad2e96",
        "notop_url": _KA + "inception_resnet_v2/inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "notop_md5": "d19885ff4a710c122648d3b5c3b684e4",
        "preprocessing": _TF, "metrics": {"accuracy": 0.803, "top5_accuracy": 0.953},
    },
    {
        "model": "nasnet_mobile", "application": "NASNetMobile", "input_size": (224, 224, 3),
        "url": _KA + "nasnet/NASNet-mobile.h5",
        "md5": "020fb642bf7360b370c678b08e0adf61",
        "notop_url": _KA + "nasnet/NASNet-mobile-no-top.h5",
        "notop_md5": "1ed92395b5b598bdda52abe5c0dbfd63",
        "preprocessing": _TF, "metrics": {"accuracy": 0.744, "top5_accuracy": 0.919},
    },
    {
        "model": "nasnet_large", "application": "NASNetLarge", "input_size": (331, 331, 3),
        "url": _KA + "nasnet/NASNet-large.h5",
        "md5": "11577c9a518f0070763c2b964a382f17",
        "notop_url": _KA + "nasnet/NASNet-large-no-top.h5",
        "notop_md5": "d81d89dc07e6e56530c4e77faddd61b5",
        "preprocessing": _TF, "metrics": {"accuracy": 0.825, "top5_accuracy": 0.96},
    },
    {
        "model": "mobilenet", "application": "MobileNet", "input_size": (224, 224, 3),
        "url": _KA + "mobilenet/mobilenet_1_0_224_tf.h5",
        "notop_url": _KA + "mobilenet/mobilenet_1_0_224_tf_no_top.h5",
        "preprocessing": _TF, "metrics": {"accuracy": 0.704, "top5_accuracy": 0.895},
    },
    {
        "model": "mobilenet_v2", "application": "MobileNetV2", "input_size": (224, 224, 3),
        "url": _KA + "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
        "notop_url": _KA + "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
        "preprocessing": _TF, "metrics": {"accuracy": 0.713, "top5_accuracy": 0.901},
    },
    {
        "model": "mobilenet_v3_small", "application": "MobileNetV3Small", "input_size": (224, 224, 3),
        "url": _KA + "mobilenet_v3/weights_mobilenet_v3_small_224_1.0_float.h5",
        "md5": "8768d4c2e7dee89b9d02b2d03d65d862",
        "notop_url": _KA + "mobilenet_v3/weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
        "notop_md5": "d3e8ec802a04aa4fc771ee12a9a9b836",
        "preprocessing": _SELF, "metrics": {"accuracy": 0.681},
    },
    {
        "model": "mobilenet_v3_large", "application": "MobileNetV3Large", "input_size": (224, 224, 3),
        "url": _KA + "mobilenet_v3/weights_mobilenet_v3_large_224_1.0_float.h5",
        "md5": "59e551e166be033d707958cf9e29a6a7",
        "notop_url": _KA + "mobilenet_v3/weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
        "notop_md5": "07fb09a5933dd0c8eaafa16978110389",
        "preprocessing": _SELF, "metrics": {"accuracy": 0.756},
    },
    {
        "model": "efficientnet_b0", "application": "EfficientNetB0", "input_size": (224, 224, 3),
        "url": _KA_EFFNET + "efficientnetb0.h5",
        "md5": "902e53a9f72be733fc0bcb005b3ebbac",
        "notop_url": _KA_EFFNET + "efficientnetb0_notop.h5",
        "notop_md5": "50bc09e76180e00e4465e1a485ddc09d",
        "preprocessing": _SELF, "metrics": {"accuracy": 0.771, "top5_accuracy": 0.933},
        "post_load": "square_normalization_variance",
    },
    {
        "model": "efficientnet_b1", "application": "EfficientNetB1", "input_size": (240, 240, 3),
        "url": _KA_EFFNET + "efficientnetb1.h5",
        "md5": "1d254153d4ab51201f1646940f018540",
        "notop_url": _KA_EFFNET + "efficientnetb1_notop.h5",
        "notop_md5": "74c4e6b3e1f6a1eea24c589628592432",
        "preprocessing": _SELF, "metrics": {"accuracy": 0.791, "top5_accuracy": 0.944},
        "post_load": "square_normalization_variance",
    },
    {
        "model": "efficientnet_b2", "application": "EfficientNetB2", "input_size": (260, 260, 3),
        "url": _KA_EFFNET + "efficientnetb2.h5",
        "md5": "b15cce36ff4dcbd00b6dd88e7857a6ad",
        "notop_url": _KA_EFFNET + "efficientnetb2_notop.h5",
        "notop_md5": "111f8e2ac8aa800a7a99e3239f7bfb39",
        "preprocessing": _SELF, "metrics": {"accuracy": 0.801, "top5_accuracy": 0.949},
        "post_load": "square_normalization_variance",
    },
    {
        "model": "efficientnet_b3", "application": "EfficientNetB3", "input_size": (300, 300, 3),
        "url": _KA_EFFNET + "efficientnetb3.h5",
        "md5": "ffd1fdc53d0ce67064dc6a9c7960ede0",
        "notop_url": _KA_EFFNET + "efficientnetb3_notop.h5",
        "notop_md5": "af6d107764bb5b1abb91932881670226",
        "preprocessing": _SELF, "metrics": {"accuracy": 0.816, "top5_accuracy": 0.957},
        "post_load": "square_normalization_variance",
    },
    {
        "model": "efficientnet_b4", "application": "EfficientNetB4", "input_size": (380, 380, 3),
        "url": _KA_EFFNET + "efficientnetb4.h5",
        "md5": "18c95ad55216b8f92d7e70b3a046e2fc",
        "notop_url": _KA_EFFNET + "efficientnetb4_notop.h5",
        "notop_md5": "ebc24e6d6c33eaebbd558eafbeedf1ba",
        "preprocessing": _SELF, "metrics": {"accuracy": 0.829, "top5_accuracy": 0.964},
        "post_load": "square_normalization_variance",
    },
    {
        "model": "efficientnet_b5", "application": "EfficientNetB5", "input_size": (456, 456, 3),
        "url": _KA_EFFNET + "efficientnetb5.h5",
        "md5": "ace28f2a6363774853a83a0b21b9421a",
        "notop_url": _KA_EFFNET + "efficientnetb5_notop.h5",
        "notop_md5": "38879255a25d3c92d5e44e04ae6cec6f",
        "preprocessing": _SELF, "metrics": {"accuracy": 0.836, "top5_accuracy": 0.967},
        "post_load": "square_normalization_variance",
    },
    {
        "model": "efficientnet_b6", "application": "EfficientNetB6", "input_size": (528, 528, 3),
        "url": _KA_EFFNET + "efficientnetb6.h5",
        "md5": "165f6e37dce68623721b423839de8be5",
        "notop_url": _KA_EFFNET + "efficientnetb6_notop.h5",
        "notop_md5": "9ecce42647a20130c1f39a5d4cb75743",
        "preprocessing": _SELF, "metrics": {"accuracy": 0.84, "top5_accuracy": 0.968},
        "post_load": "square_normalization_variance",
    },
    {
        "model": "efficientnet_b7", "application": "EfficientNetB7", "input_size": (600, 600, 3),
        "url": _KA_EFFNET + "efficientnetb7.h5",
        "md5": "8c03f828fec3ef71311cd463b6759d99",
        "notop_url": _KA_EFFNET + "efficientnetb7_notop.h5",
        "notop_md5": "cbcfe4450ddf6f3ad90b1b398090fe4a",
        "preprocessing": _SELF, "metrics": {"accuracy": 0.843, "top5_accuracy": 0.97},
        "post_load": "square_normalization_variance",
    },
    {
        "model": "efficientnet_v2_b0", "application": "EfficientNetV2B0", "input_size": (224, 224, 3),
        "url": _KA + "efficientnet_v2/efficientnetv2-b0.h5",
        "md5": "21ecbf6da12460d5c40bb2f29ceb2188",
        "notop_url": _KA + "efficientnet_v2/efficientnetv2-b0_notop.h5",
        "notop_md5": "893217f2bb855e2983157299931e43ff",
        "preprocessing": _SELF, "metrics": {"accuracy": 0.787, "top5_accuracy": 0.943},
    },
    {
        "model": "efficientnet_v2_b1", "application": "EfficientNetV2B1", "input_size": (240, 240, 3),
        "url": _KA + "efficientnet_v2/efficientnetv2-b1.h5",
        "md5": "069f0534ff22adf035c89e2d9547a9dc",
        "notop_url": _KA + "efficientnet_v2/efficientnetv2-b1_notop.h5",
        "notop_md5": "0e80663031ca32d657f9caa404b6ec37",
        "preprocessing": _SELF, "metrics": {"accuracy": 0.798, "top5_accuracy": 0.95},
    },
    {
        "model": "efficientnet_v2_b2", "application": "EfficientNetV2B2", "input_size": (260, 260, 3),
        "url": _KA + "efficientnet_v2/efficientnetv2-b2.h5",
        "md5": "424e49f28180edbde1e94797771950a7",
        "notop_url": _KA + "efficientnet_v2/efficientnetv2-b2_notop.h5",
        "notop_md5": "1dfe2e7a5d45b6632553a8961ea609eb",
        "preprocessing": _SELF, "metrics": {"accuracy": 0.805, "top5_accuracy": 0.951},
    },
    {
        "model": "efficientnet_v2_b3", "application": "EfficientNetV2B3", "input_size": (300, 300, 3),
        "url": _KA + "efficientnet_v2/efficientnetv2-b3.h5",
        "md5": "1f1fc43bd98a6e4fd8fdfd551e02c7a0",
        "notop_url": _KA + "efficientnet_v2/efficientnetv2-b3_notop.h5",
        "notop_md5": "f6abf7b5849ac99a89b50dd3fd532856",
        "preprocessing": _SELF, "metrics": {"accuracy": 0.82, "top5_accuracy": 0.958},
    },
    {
        "model": "efficientnet_v2_s", "application": "EfficientNetV2S", "input_size": (384, 384, 3),
        "url": _KA + "efficientnet_v2/efficientnetv2-s.h5",
        "md5": "e1d88a8495beba45748fedd0cecbe016",
        "notop_url": _KA + "efficientnet_v2/efficientnetv2-s_notop.h5",
        "notop_md5": "af0682fb74e8c54910f2d4393339c070",
        "preprocessing": _SELF, "metrics": {"accuracy": 0.839, "top5_accuracy": 0.967},
    },
    {
        "model": "efficientnet_v2_m", "application": "EfficientNetV2M", "input_size": (480, 480, 3),
        "url": _KA + "efficientnet_v2/efficientnetv2-m.h5",
        "md5": "a3bf6aa3276309f4fc6a34aa114c95cd",
        "notop_url": _KA + "efficientnet_v2/efficientnetv2-m_notop.h5",
        "notop_md5": "1b8dc055df72dde80d614482840fe342",
        "preprocessing": _SELF, "metrics": {"accuracy": 0.853, "top5_accuracy": 0.974},
    },
    {
        "model": "efficientnet_v2_l", "application": "EfficientNetV2L", "input_size": (480, 480, 3),
        "url": _KA + "efficientnet_v2/efficientnetv2-l.h5",
        "md5": "27e6d408b53c7ebc868fefa357689935",
        "notop_url": _KA + "efficientnet_v2/efficientnetv2-l_notop.h5",
        "notop_md5": "b0b66b5c863aef5b46e8608fe1711615",
        "preprocessing": _SELF, "metrics": {"accuracy": 0.857, "top5_accuracy": 0.975},
    },
    {
        "model": "convnext_tiny", "application": "ConvNeXtTiny", "input_size": (224, 224, 3),
        "url": _KA + "convnext/convnext_tiny.h5",
        "sha256": "8ae6e78ce2933352b1ef4008e6dd2f17bc40771563877d156bc6426c7cf503ff",
        "notop_url": _KA + "convnext/convnext_tiny_notop.h5",
        "notop_sha256": "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1",
        "preprocessing": _SELF, "metrics": {},
    },
    {
        "model": "convnext_small", "application": "ConvNeXtSmall", "input_size": (224, 224, 3),
        "url": _KA + "convnext/convnext_small.h5",
        "sha256": "ce1277d8f1ee5a0ef0e171469089c18f5233860ceaf9b168049cb9263fd7483c",
        "notop_url": _KA + "convnext/convnext_small_notop.h5",
        "notop_sha256": "6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab",
        "preprocessing": _SELF, "metrics": {},
    },
    {
        "model": "convnext_base", "application": "ConvNeXtBase", "input_size": (224, 224, 3),
        "url": _KA + "convnext/convnext_base.h5",
        "sha256": "52cbb006d3dadd03f6e095a8ca1aca47aecdd75acb4bc74bce1f5c695d0086e6",
        "notop_url": _KA + "convnext/convnext_base_notop.h5",
        "notop_sha256": "40a20c5548a5e9202f69735ecc06c990e6b7c9d2de39f0361e27baeb24cb7c45",
        "preprocessing": _SELF, "metrics": {},
    },
    {
        "model": "convnext_large", "application": "ConvNeXtLarge", "input_size": (224, 224, 3),
        "url": _KA + "convnext/convnext_large.h5",
        "sha256": "070c5ed9ed289581e477741d3b34beffa920db8cf590899d6d2c67fba2a198a6",
        "notop_url": _KA + "convnext/convnext_large_notop.h5",
        "notop_sha256": "96f02b6f0753d4f543261bc9d09bed650f24dd6bc02ddde3066135b63d23a1cd",
        "preprocessing": _SELF, "metrics": {},
    },
    {
        "model": "convnext_xlarge", "application": "ConvNeXtXLarge", "input_size": (224, 224, 3),
        "url": _KA + "convnext/convnext_xlarge.h5",
        "sha256": "c1f5ccab661354fc3a79a10fa99af82f0fbf10ec65cb894a3ae0815f17a889ee",
        "notop_url": _KA + "convnext/convnext_xlarge_notop.h5",
        "notop_sha256": "de3f8a54174130e0cecdc71583354753d557fcf1f4487331558e2a16ba0cfe05",
        "preprocessing": _SELF, "metrics": {},
    },
]
