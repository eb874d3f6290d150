"""Video classification: one label per clip of frames; clip and (multi-clip) video accuracy.

Canonical example: {"video": uint8 (T, H, W, 3), "label": int}, T varies between videos.

Frame sampling (`prepare`): a clip is `data.num_frames` frames `data.frame_stride` apart.
Training takes one clip at a random start (a random temporal crop); validation during training
takes the clip in the middle of the video; the final evaluation too, or, with
`data.eval_clips: K > 1`, K clips with starts evenly spaced from the first to the last possible
one (`make_eval_dataset`), whose scores `evaluate` averages per video into `video_accuracy`.
A video too short for the span (num_frames - 1) * frame_stride + 1 first gets a smaller stride
(the largest that fits); one with fewer than num_frames frames is padded by looping: frame
indices wrap around (0, 1, .., T-1, 0, 1, ..).

Spatial augmentation (`data.augment`, as for classification) is decided once per clip and
applied to every frame alike: the frames are stacked along the channel axis, augmented as one
image, and unstacked. Careful with `augment.flip` on direction-dependent labels (moving_shapes:
a mirrored "left" clip is a "right" clip).

Folder layout (`data.source: folder`): `<path>/<split>/<class_name>/<clip>/<frame images>`,
frames in name order (all frames of a clip the same size), or `<class_name>/<video file>` when
OpenCV is installed (`pip install keras-zoo[video]`). Every frame of a clip is decoded, then
sampled: keep clips short or extract frames at a lower rate. Empty clip folders and undecodable
frames are errors naming the clip, or, with `data.skip_corrupt: true`, skipped with a count.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoo.config import DataConfig
from zoo.data import MAX_PIXELS, DatasetInfo, to_rgb
from zoo.errors import DataError
from zoo.lazy import keras, tf
from zoo.tasks.base import Source, register_task
from zoo.tasks.classification import Classification
from zoo.tasks.video.clips import clip_indices, frame_files, is_clip, read_clip, sample_clips


@dataclass
class VideoData(DataConfig):
    num_frames: int = 8  # frames per clip
    frame_stride: int = 1  # take every n-th frame
    eval_clips: int = 1  # clips per video at evaluation, scores averaged


@register_task
class Video(Classification):
    """Clip classification; the loss and metrics are image classification's."""

    name = "video"
    sources = {"folder": Source("zoo.tasks.video.clips:load_folder", ("path",))}
    data_config = VideoData
    input_kind = "frame images, clip folders or video files"
    export_limits = {("litert", "int8"): "the LiteRT converter's int8 calibration crashes on the LSTM "
                                         "(TensorFlow 2.21); use --dtype float16, or --format onnx --dtype int8"}

    def from_tfds(self, tfds_info):
        import tensorflow_datasets as tfds

        features = tfds_info.features
        video_key = next((k for k, f in features.items() if isinstance(f, tfds.features.Video)), None)
        label_key = next((k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)), None)
        if video_key is None or label_key is None:
            raise DataError(f"tfds {tfds_info.name}: no video and class-label features to classify")

        def adapt(example):
            return {"video": to_rgb(example[video_key]), "label": example[label_key]}

        label_feature = features[label_key]
        return adapt, DatasetInfo(label_feature.num_classes, list(label_feature.names))

    def prepare(self, example, recipe, info, training):
        """One clip: a random temporal crop when training, the middle clip otherwise."""
        clips = sample_clips(example["video"], recipe.data, training, clips=1)
        return clips[0], example["label"]

    def make_eval_dataset(self, split, recipe, validation_dataset):
        """With data.eval_clips K > 1: batches of (K clips per video (B, K, T, H, W, 3), labels)."""
        k = recipe.data.eval_clips
        if k == 1:
            return validation_dataset
        dataset = split.dataset.map(
            lambda ex: (sample_clips(ex["video"], recipe.data, False, clips=k), ex["label"]),
            num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.batch(max(1, recipe.data.batch_size // k)).prefetch(tf.data.AUTOTUNE)

    def example_bytes(self, recipe) -> int:
        height, width = recipe.data.image_size
        return recipe.data.num_frames * recipe.data.frame_stride * height * width * 3

    def model_args(self, recipe, info):
        return {"num_classes": info.num_classes,
                "input_shape": (recipe.data.num_frames, *recipe.data.image_size, 3)}

    def evaluate(self, model, dataset, info, report=None):
        """Clip `accuracy` (+ `top5_accuracy`); with several clips per video (rank-6 inputs from
        `make_eval_dataset`) also `video_accuracy` of the clip scores averaged per video. The
        report (`Classification.evaluate`) is on clips: each clip, its label."""
        from zoo.tasks.classification.metrics import classification_metrics
        from zoo.tasks.classification.report import ConfidentMistakes, predict_with_mistakes, report_classes

        mistakes = ConfidentMistakes() if report is not None and report.folder is not None else None
        spec = dataset.element_spec[0]
        if spec.shape.rank != 6:
            scores, labels = predict_with_mistakes(model, dataset, mistakes)
            if report is not None:
                report_classes(report, scores, labels, self.class_names(model, info), mistakes, what="clips")
            return classification_metrics(scores, labels, info.num_classes)
        k, clip_shape = spec.shape[1], spec.shape[2:]
        flat = dataset.map(lambda clips, label: (tf.reshape(clips, [-1, *clip_shape]), tf.repeat(label, k)))
        scores, clip_labels = predict_with_mistakes(model, flat, mistakes)  # (videos * k, C), (videos * k,)
        labels = np.asarray(clip_labels).astype(np.int64).reshape(-1)[::k]
        if report is not None:
            report_classes(report, scores, clip_labels, self.class_names(model, info), mistakes, what="clips",
                           clips_per_video=k)
        out = classification_metrics(scores, np.repeat(labels, k), info.num_classes)
        video_scores = np.asarray(scores).reshape(len(labels), k, -1).mean(axis=1)
        out["video_accuracy"] = float(np.mean(video_scores.argmax(-1) == labels))
        out["num_videos"] = int(len(labels))
        return out

    def serving_frames(self, model, recipe) -> int:
        """Frames per clip: the model's own T where it fixes one, else data.num_frames."""
        shape = model.input_shape
        fixed = isinstance(shape, tuple) and len(shape) == 5 and shape[1]
        return int(shape[1]) if fixed else recipe.data.num_frames

    def serving_model(self, model, recipe):
        """uint8 clips `images` (B, T, H, W, 3), any H and W -> `probabilities` (B, C)."""
        from zoo.serving import EvalView, image_input

        clips = image_input(frames=self.serving_frames(model, recipe))
        view = EvalView(recipe.data.image_size, recipe.data.eval_crop, name="eval_view")(clips)
        return keras.Model(clips, {"probabilities": model(view)}, name=f"{model.name}_serving")

    def serving_example(self, example, recipe):
        """The middle clip's frames, as they were stored."""
        data = recipe.data
        indices = clip_indices(tf.shape(example["video"])[0], data.num_frames, data.frame_stride, False)
        return tf.gather(example["video"], indices[0]), example["label"]

    def folder_inputs(self, folder):
        """A folder of frame images is one clip; a folder of clip folders / video files, its clips."""
        if frame_files(folder):
            return None
        return sorted(str(p) for p in folder.iterdir() if is_clip(p))

    def read_input(self, path, max_pixels: int = MAX_PIXELS):
        """A clip folder or video file -> uint8 (T, H, W, 3)."""
        return read_clip(path, max_pixels)

    input_rank = 4  # a clip (T, H, W, 3)
    picture_kind = "frames"

    def serving_inputs(self, original, predictor):
        """A video (T, H, W, 3) -> its `data.eval_clips` clips of the serving graph's frames
        (clips, frames, H, W, 3), as evaluation samples them."""
        return np.asarray(original)[self._clip_indices(len(original), predictor)]

    def _clip_indices(self, length: int, predictor) -> np.ndarray:
        data = predictor.recipe.data
        frames = self.serving_frames(predictor.model, predictor.recipe)
        return np.asarray(clip_indices(length, frames, data.frame_stride, False, data.eval_clips))

    def result(self, source, original, outputs, predictor):
        """The scores of the video's clips averaged."""
        from zoo.tasks.video.results import ClipClasses

        return ClipClasses(source, original, predictor.names, outputs["probabilities"].mean(axis=0),
                           self._clip_indices(len(original), predictor))
