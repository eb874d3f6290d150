"""Image classification: one label per image, softmax probabilities, top-1/top-5 accuracy."""
from __future__ import annotations

import numpy as np

from zoo.data import DatasetInfo, to_rgb
from zoo.data.augment import augment_image
from zoo.lazy import keras
from zoo.tasks.base import Source, Task, register_task
from zoo.tasks.classification.results import top_k  # noqa: F401  (zoo.tasks.classification.top_k)
from zoo.tasks.classification.sources import tfds_label_features


@register_task
class Classification(Task):
    name = "classification"
    sources = {"folder": Source("zoo.tasks.classification.sources:load_folder", ("path",)),
               "digits": Source("zoo.tasks.classification.sources:load_digits")}

    def from_tfds(self, tfds_info):
        image_key, label_key, label_feature = tfds_label_features(tfds_info)

        def adapt(example):
            return {"image": to_rgb(example[image_key]), "label": example[label_key]}

        return adapt, DatasetInfo(label_feature.num_classes, list(label_feature.names))

    def prepare(self, example, recipe, info, training):
        image = augment_image(example["image"], recipe.data.image_size, recipe.data.augment,
                              training, recipe.data.eval_crop)
        return image, example["label"]

    def loss(self, info, label_smoothing: float = 0.0):
        from zoo.tasks.classification.metrics import SmoothedSparseCrossentropy

        if label_smoothing:
            return SmoothedSparseCrossentropy(label_smoothing, info.num_classes)
        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self, info):
        from zoo.tasks.classification.metrics import TopKAccuracy

        metrics = [TopKAccuracy(1, name="accuracy")]
        if info.num_classes > 5:
            metrics.append(TopKAccuracy(5, name="top5_accuracy"))
        return metrics

    def evaluate(self, model, dataset, info, report=None):
        """Top-1 (+ top-5) accuracy; with a `zoo.report.Report`, the per-class table and, with
        its folder, the confusion matrix, PR curves and most confident mistakes."""
        from zoo.tasks.classification.metrics import classification_metrics
        from zoo.tasks.classification.report import ConfidentMistakes, predict_with_mistakes, report_classes

        mistakes = ConfidentMistakes() if report is not None and report.folder is not None else None
        scores, labels = predict_with_mistakes(model, dataset, mistakes)
        if report is not None:
            report_classes(report, scores, labels, self.class_names(model, info), mistakes)
        return classification_metrics(scores, labels, info.num_classes)

    # -- export ----------------------------------------------------------------
    def serving_model(self, model, recipe):
        """uint8 `images` (B, H, W, 3), any size -> `probabilities` (B, C), after the
        evaluation view (center crop `data.eval_crop`, resize)."""
        from zoo.serving import EvalView, image_input

        images = image_input()
        view = EvalView(recipe.data.image_size, recipe.data.eval_crop, name="eval_view")(images)
        return keras.Model(images, {"probabilities": model(view)}, name=f"{model.name}_serving")

    def serving_example(self, example, recipe):
        return example["image"], example["label"]

    def serving_metrics(self, outputs, truths, info):
        from zoo.tasks.classification.metrics import classification_metrics

        scores = np.concatenate([out["probabilities"] for out in outputs])
        return classification_metrics(scores, np.asarray(truths), info.num_classes)

    picture_kind = "classes"

    def result(self, source, original, outputs, predictor):
        from zoo.tasks.classification.results import Classes

        return Classes(source, original, predictor.names, outputs["probabilities"][0])
