"""Video clips: frame sampling, spatial augmentation per clip, clip folders and video files."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from zoo.data import MAX_PIXELS, Split, DatasetInfo, class_index, decode_image, find_bad_image
from zoo.data.augment import augment_image
from zoo.errors import DataError
from zoo.lazy import tf
from zoo.tasks.classification.sources import class_folders, is_image_file, list_class_files

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


def decode_frames(paths, max_pixels: int = MAX_PIXELS):
    """1-D string tensor of frame files -> uint8 (T, H, W, 3)."""
    return tf.map_fn(lambda path: decode_image(path, max_pixels), paths,
                     fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))


def frame_files(clip: Path) -> list[str]:
    return sorted(str(p) for p in clip.iterdir() if is_image_file(p))


def is_clip(path) -> bool:
    """A Path or an os.DirEntry that is a clip: a folder of frames or a video file."""
    return path.is_dir() or (os.path.splitext(path.name)[1].lower() in VIDEO_EXTENSIONS and path.is_file())


def read_clip(path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A clip folder or video file -> uint8 (T, H, W, 3), for `zoo predict`; frames of more than
    `max_pixels` pixels are refused (a video file's frames are OpenCV's)."""
    path = Path(path)
    if path.is_dir():
        frames = frame_files(path)
        if not frames:
            raise DataError(f"empty clip folder: {path} (no frame images)")
        bad = find_bad_image(frames, max_pixels)
        if bad is not None:
            raise DataError(f"corrupt frame file: {bad} (clip {path})")
        images = [decode_image(f, max_pixels).numpy() for f in frames]
        if len({im.shape for im in images}) > 1:
            raise DataError(f"clip {path}: frames differ in size")
        return np.stack(images)
    if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
        try:
            return read_video_file(path)
        except ValueError as err:
            raise DataError(str(err)) from None
    raise DataError(f"not a clip folder or video file: {path}")


def clip_diagnosis(frame_clips, video_paths, max_pixels: int = MAX_PIXELS):
    """A `Split.diagnose` naming the clip whose frames failed to decode or to stack."""

    def diagnose(error):
        for frames in frame_clips:
            bad = find_bad_image(frames, max_pixels)
            if bad is not None:
                raise DataError(f"corrupt frame file: {bad} (clip {Path(bad).parent}; set "
                                "data.skip_corrupt=true to skip such clips)") from None
        for frames in frame_clips:
            if len({tuple(decode_image(f, max_pixels).shape) for f in frames}) > 1:
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
    split_dir, classes, broken = class_folders(Path(data.path), split)
    index = class_index(classes, truth, split_dir)
    items, labels = list_class_files(split_dir, classes, is_clip, broken)
    labels = [index[label] for label in labels]
    frame_clips, frame_labels, videos, video_labels, skipped = [], [], [], [], 0
    for item, label in zip(items, labels):
        path = Path(item)
        if path.is_dir():
            frames = frame_files(path)
            if not frames or (data.skip_corrupt and find_bad_image(frames, data.max_pixels) is not None):
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
        video = tf.cond(record["file"] == "", lambda: decode_frames(record["frames"], data.max_pixels),
                        lambda: tf.numpy_function(read_video_file, [record["file"]], tf.uint8, stateful=False))
        video.set_shape([None, None, None, 3])
        return {"video": video, "label": record["label"]}

    names = classes if truth is None else list(truth.class_names)  # the labels' classes, mapped
    info = DatasetInfo(len(names), names, len(clips))
    return Split(records, info, clip_diagnosis(frame_clips, videos, data.max_pixels), decode=decode,
                 labels=np.asarray(frame_labels + video_labels, np.int64))
