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

from pathlib import Path

import numpy as np
import tensorflow as tf

from zoo.data import DatasetInfo, Split, class_index, decode_image, find_bad_image
from zoo.data.augment import augment_image
from zoo.errors import DataError
from zoo.tasks.base import predict_dataset, register_task
from zoo.tasks.classification import (Classification, class_folders,
                                      classification_metrics, is_image_file, list_class_files,
                                      to_rgb, top_k_text)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


# ---------------------------------------------------------------- frame sampling


def clip_indices(length, num_frames: int, stride: int, training: bool, clips: int = 1):
    """(clips, num_frames) int32 frame indices into a video of `length` frames (see module doc)."""
    length = tf.maximum(tf.cast(length, tf.int32), 1)
    if num_frames > 1:
        stride = tf.clip_by_value((length - 1) // (num_frames - 1), 1, stride)  # shrink to fit
    else:
        stride = tf.constant(1, tf.int32)
    room = tf.maximum(length - ((num_frames - 1) * stride + 1), 0)  # possible starts - 1
    if training:
        starts = tf.random.uniform([1], 0, room + 1, dtype=tf.int32)
    elif clips == 1:
        starts = tf.reshape(room // 2, [1])
    else:
        starts = tf.cast(tf.round(tf.linspace(0.0, tf.cast(room, tf.float32), clips)), tf.int32)
    indices = starts[:, None] + tf.range(num_frames, dtype=tf.int32)[None, :] * stride
    return indices % length  # fewer frames than num_frames: loop


def augment_clips(clips, size, augment, training: bool, eval_crop: float = 1.0):
    """uint8 (K, N, H, W, 3) -> float32 (K, N, *size, 3), one spatial augmentation for all frames."""
    k, n, channels = clips.shape[0], clips.shape[1], clips.shape[-1]
    shape = tf.shape(clips)
    stacked = tf.reshape(tf.transpose(clips, [2, 3, 0, 1, 4]), [shape[2], shape[3], k * n * channels])
    stacked = augment_image(stacked, size, augment, training, eval_crop)
    return tf.transpose(tf.reshape(stacked, [*size, k, n, channels]), [2, 3, 0, 1, 4])


def sample_clips(video, data, training: bool, clips: int = 1):
    """A canonical video -> float32 (clips, N, H, W, 3); training takes 1 random clip."""
    clips = 1 if training else clips
    indices = clip_indices(tf.shape(video)[0], data.num_frames, data.frame_stride, training, clips)
    frames = tf.gather(video, indices)
    frames.set_shape([clips, data.num_frames, None, None, 3])
    return augment_clips(frames, data.image_size, data.augment, training, data.eval_crop)


# ---------------------------------------------------------------- reading clips


def video_files_need_cv2(path):
    """Import OpenCV for video files, or a DataError naming the file that needs it."""
    try:
        import cv2
    except ImportError:
        raise DataError(f"cannot read video file {path}: OpenCV is not installed "
                        "(pip install 'keras-zoo[video]', i.e. opencv-python-headless), "
                        "or extract its frames into a clip folder") from None
    return cv2


def read_video_file(path) -> np.ndarray:
    """All frames of a video file as uint8 RGB (T, H, W, 3); ValueError naming the file."""
    path = path.decode() if isinstance(path, bytes) else str(path)
    cv2 = video_files_need_cv2(path)
    capture = cv2.VideoCapture(path)
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise ValueError(f"cannot read video file: {path} (no decodable frames)")
    return np.stack(frames)


def decode_frames(paths):
    """1-D string tensor of frame files -> uint8 (T, H, W, 3)."""
    return tf.map_fn(decode_image, paths, fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))


def frame_files(clip: Path) -> list[str]:
    return sorted(str(p) for p in clip.iterdir() if is_image_file(p))


def is_clip(path: Path) -> bool:
    return path.is_dir() or (path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS)


def read_clip(path) -> np.ndarray:
    """A clip folder or video file -> uint8 (T, H, W, 3), for `zoo predict`."""
    path = Path(path)
    if path.is_dir():
        frames = frame_files(path)
        if not frames:
            raise DataError(f"empty clip folder: {path} (no frame images)")
        bad = find_bad_image(frames)
        if bad is not None:
            raise DataError(f"corrupt frame file: {bad} (clip {path})")
        images = [decode_image(f).numpy() for f in frames]
        if len({im.shape for im in images}) > 1:
            raise DataError(f"clip {path}: frames differ in size")
        return np.stack(images)
    if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
        try:
            return read_video_file(path)
        except ValueError as err:
            raise DataError(str(err)) from None
    raise DataError(f"not a clip folder or video file: {path}")


def clip_diagnosis(frame_clips, video_paths):
    """A `Split.diagnose` naming the clip whose frames failed to decode or to stack."""

    def diagnose(error):
        for frames in frame_clips:
            bad = find_bad_image(frames)
            if bad is not None:
                raise DataError(f"corrupt frame file: {bad} (clip {Path(bad).parent}; set "
                                "data.skip_corrupt=true to skip such clips)") from None
        for frames in frame_clips:
            if len({tuple(decode_image(f).shape) for f in frames}) > 1:
                raise DataError(f"clip {Path(frames[0]).parent}: frames differ in size") from None
        for path in video_paths:
            try:
                read_video_file(path)
            except ValueError as err:
                raise DataError(f"{err} (set data.skip_corrupt=true to skip such clips)") from None

    return diagnose


def load_folder(data, task, split: str, truth=None) -> Split:
    """`<path>/<split>/<class_name>/<clip folder of frames | video file>`, classes = sorted folders
    (mapped by name onto the training split's, `truth`, for the other splits)."""
    split_dir, classes = class_folders(Path(data.path), split)
    index = class_index(classes, truth, split_dir)
    items, labels = list_class_files(split_dir, classes, is_clip)
    labels = [index[label] for label in labels]
    frame_clips, frame_labels, videos, video_labels, skipped = [], [], [], [], 0
    for item, label in zip(items, labels):
        path = Path(item)
        if path.is_dir():
            frames = frame_files(path)
            if not frames or (data.skip_corrupt and find_bad_image(frames) is not None):
                if data.skip_corrupt:
                    skipped += 1
                    continue
                raise DataError(f"empty clip folder: {path} (no frame images; set "
                                "data.skip_corrupt=true to skip such clips)")
            frame_clips.append(frames)
            frame_labels.append(label)
        else:
            video_files_need_cv2(path)
            if data.skip_corrupt:
                try:
                    read_video_file(path)
                except ValueError:
                    skipped += 1
                    continue
            videos.append(str(path))
            video_labels.append(label)
    if skipped:
        print(f"warning: skipped {skipped} empty or unreadable clip(s) under {split_dir}")
    if not frame_clips and not videos:
        raise DataError(f"no readable clips under {split_dir}")

    # One record per clip: its frame files (none for a video file) or its video file (else "").
    clips = frame_clips + [[] for _ in videos]
    records = tf.data.Dataset.from_tensor_slices({
        "frames": tf.RaggedTensor.from_row_lengths(tf.constant([f for c in clips for f in c], tf.string),
                                                   [len(c) for c in clips]),
        "file": [""] * len(frame_clips) + videos,
        "label": tf.constant(frame_labels + video_labels, tf.int64)})

    def decode(record):
        video = tf.cond(record["file"] == "", lambda: decode_frames(record["frames"]),
                        lambda: tf.numpy_function(read_video_file, [record["file"]], tf.uint8, stateful=False))
        video.set_shape([None, None, None, 3])
        return {"video": video, "label": record["label"]}

    info = DatasetInfo(len(classes), classes, len(clips))
    return Split(records, info, clip_diagnosis(frame_clips, videos), decode=decode)


# ---------------------------------------------------------------- the task


@register_task
class Video(Classification):
    """Clip classification; the loss and metrics are image classification's."""

    name = "video"
    sources = {"folder": load_folder}
    input_key = "video"
    input_kind = "frame images, clip folders or video files"

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

    def evaluate(self, model, dataset, info):
        """Clip `accuracy` (+ `top5_accuracy`); with several clips per video (rank-6 inputs from
        `make_eval_dataset`) also `video_accuracy` of the clip scores averaged per video."""
        spec = dataset.element_spec[0]
        if spec.shape.rank != 6:
            scores, labels = predict_dataset(model, dataset)
            return classification_metrics(scores, labels, info.num_classes)
        k, clip_shape = spec.shape[1], spec.shape[2:]
        flat = dataset.map(lambda clips, label: (tf.reshape(clips, [-1, *clip_shape]), label))
        scores, labels = predict_dataset(model, flat)  # scores (videos * k, C), labels (videos,)
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        out = classification_metrics(scores, np.repeat(labels, k), info.num_classes)
        video_scores = np.asarray(scores).reshape(len(labels), k, -1).mean(axis=1)
        out["video_accuracy"] = float(np.mean(video_scores.argmax(-1) == labels))
        out["num_videos"] = int(len(labels))
        return out

    def folder_inputs(self, folder):
        """A folder of frame images is one clip; a folder of clip folders / video files, its clips."""
        if frame_files(folder):
            return None
        return sorted(str(p) for p in folder.iterdir() if is_clip(p))

    def read_input(self, path):
        """A clip folder or video file -> uint8 (T, H, W, 3)."""
        return read_clip(path)

    def predict(self, model, inputs, info, recipe, output_dir):
        for path, video in inputs:
            clips = sample_clips(tf.constant(video), recipe.data, False, clips=recipe.data.eval_clips)
            probs = np.asarray(model.predict_on_batch(clips), dtype=np.float32).mean(axis=0)
            yield f"{path}: " + top_k_text(probs, info.class_names)
