"""Segmentation sources: the `folder` layout (masks read and checked up front) and the TFDS mask
features (Oxford-IIIT Pet trimaps, or any dataset whose mask values are class ids)."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from zoo.data import (IMAGE_EXTENSIONS, MAX_PIXELS, DatasetInfo, OversizedImage, Split, decode_image,
                      drop_bad_images, find_bad_image)
from zoo.data.augment import IGNORE_INDEX
from zoo.errors import DataError
from zoo.lazy import tf
from zoo.tasks.classification.sources import warn_broken_links, without_broken_links

PETS_CLASSES = ["background", "pet", "border"]
MASK_MODES = ("L", "P", "I", "I;16", "1")


# ---------------------------------------------------------------- folder


_PILLOW_LIMIT = threading.Lock()  # `scan` opens files from several threads


def open_image(path):
    """`PIL.Image.open(path)` (the header) without Pillow's decompression-bomb check, lifted for
    this call only: the zoo checks data.max_pixels itself, and Pillow's warning (above 89M pixels)
    or error (above 178M) would come before, or instead of, its line."""
    from PIL import Image

    with _PILLOW_LIMIT:
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def read_mask(path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A mask PNG as (H, W) uint8 class ids; palette PNGs give their indices."""
    with open_image(path) as img:
        if img.width * img.height > max_pixels:
            raise OversizedImage(path, img.width, img.height, max_pixels)
        if img.mode not in MASK_MODES:
            raise DataError(f"mask {path} has mode {img.mode}: expected a single-channel PNG of "
                            f"class indices (8-bit grey or palette; 255 = ignore)")
        array = np.asarray(img)
    if array.dtype != np.uint8:
        if array.size and (array.max() > 255 or array.min() < 0):
            raise DataError(f"mask {path} has values outside 0..255 (max {array.max()})")
        array = array.astype(np.uint8)
    return array


def image_size(path):
    """(H, W) as shown (a JPEG's EXIF orientation applied, as decoding does) from the image header,
    or None when PIL cannot read it."""
    from PIL import UnidentifiedImageError

    try:
        with open_image(path) as img:  # reads the header only
            turned = img.format == "JPEG" and img.getexif().get(0x0112) in (5, 6, 7, 8)
            return img.size if turned else img.size[::-1]
    except (UnidentifiedImageError, OSError):
        return None  # not decodable here; TF may still decode it (webp...) or diagnose it later


def list_pairs(split_dir: Path):
    """Sorted (image path, mask path) of a split; a missing mask names its image."""
    images_dir, masks_dir = split_dir / "images", split_dir / "masks"
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise DataError(f"dataset folder not found: {folder} (segmentation layout: "
                            f"<path>/<split>/images/<stem>.<ext> + <path>/<split>/masks/<stem>.png)")
    broken = []
    images = sorted(p for p in without_broken_links(images_dir.iterdir(), broken)
                    if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    warn_broken_links(len(broken), images_dir)
    if not images:
        raise DataError(f"no images in {images_dir}")
    seen = {}
    for image in images:
        if image.stem in seen:
            raise DataError(f"two images share the stem {image.stem!r}: {seen[image.stem]} and {image} "
                            f"(their mask would be the same file)")
        seen[image.stem] = image
    pairs = []
    for image in images:
        mask = masks_dir / f"{image.stem}.png"
        if not mask.is_file():
            raise DataError(f"missing mask for image {image}: expected {mask}")
        pairs.append((str(image), str(mask)))
    return pairs


def check_pair(image_path, mask_path, num_classes=None, max_pixels: int = MAX_PIXELS) -> int:
    """Validate one pair; return the largest class id in the mask (-1 when all ignore)."""
    mask = read_mask(mask_path, max_pixels)
    size = image_size(image_path)
    if size is not None and tuple(size) != mask.shape:
        raise DataError(f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but its image "
                        f"{image_path} is {size[1]}x{size[0]} (width x height)")
    labelled = mask[mask != IGNORE_INDEX]
    largest = int(labelled.max()) if labelled.size else -1
    if num_classes is not None and largest >= num_classes:
        raise DataError(f"mask {mask_path} has class value {largest}, but num_classes is "
                        f"{num_classes} (values must be 0..{num_classes - 1}, or 255 = ignore)")
    return largest


def scan(pairs, num_classes=None, max_pixels: int = MAX_PIXELS) -> list[int]:
    """check_pair over every pair (a few threads: PNG decoding releases the GIL); the first bad
    pair in sorted order raises."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda pair: check_pair(*pair, num_classes, max_pixels), pairs))


def folder_class_names(root: Path, num_classes: int, unnamed=None) -> list[str]:
    """`<root>/classes.txt` (one name per line) for the first classes, "3", "4", ... after;
    without the file, `unnamed` where given (the mask values are then taken as its indices)."""
    names_file = root / "classes.txt"
    if not names_file.is_file():
        return list(unnamed) if unnamed is not None else [str(i) for i in range(num_classes)]
    names = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
    return names[:num_classes] + [str(i) for i in range(len(names), num_classes)]


def _mask_loader(path):
    return read_mask(path.decode() if isinstance(path, bytes) else str(path))


def load_folder(data, task, split: str, truth=None) -> Split:
    """`<path>/<split>/images/<stem>.<ext>` + `<path>/<split>/masks/<stem>.png` (255 = ignore);
    with `truth` (the training split's info), mask values must be below its class count."""
    root = Path(data.path)
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataError(f"dataset folder not found: {split_dir}")
    pairs = list_pairs(split_dir)
    if data.skip_corrupt:
        kept = set(drop_bad_images([p for p, _ in pairs], True, data.max_pixels))
        pairs = [(p, m) for p, m in pairs if p in kept]
        if not pairs:
            raise DataError(f"no readable images under {split_dir / 'images'}")
    known = truth.num_classes if truth else data.num_classes
    largest = max(scan(pairs, known, data.max_pixels))
    if largest < 0 and known is None:
        raise DataError(f"every mask pixel under {split_dir / 'masks'} is 255 (ignore): "
                        f"cannot infer num_classes; set data.num_classes")
    num_classes = known or largest + 1
    names = folder_class_names(root, num_classes, truth.class_names if truth else None)
    info = DatasetInfo(num_classes, names, len(pairs))

    def load(image_path, mask_path):
        mask = tf.numpy_function(_mask_loader, [mask_path], tf.uint8, stateful=False)
        mask.set_shape([None, None])
        return {"image": decode_image(image_path, data.max_pixels), "mask": mask}

    records = tf.data.Dataset.from_tensor_slices(([p for p, _ in pairs], [m for _, m in pairs]))
    split_obj = Split(records, info, decode=load)

    def diagnose(error):
        bad = find_bad_image([p for p, _ in pairs], data.max_pixels)
        if bad is not None:
            raise DataError(f"corrupt image file: {bad} (set data.skip_corrupt=true to skip such files)") from None
        scan(pairs, split_obj.info.num_classes, data.max_pixels)  # sizes and values against the final num_classes

    split_obj.diagnose = diagnose
    return split_obj


# ---------------------------------------------------------------- tfds


def tfds_mask_feature(tfds_info):
    """(image key, mask key) of a TFDS dataset with an image and a segmentation mask."""
    import tensorflow_datasets as tfds

    features = tfds_info.features
    image_key = "image" if "image" in features else next(
        (k for k, f in features.items() if isinstance(f, tfds.features.Image)), None)
    mask_key = next((k for k in ("segmentation_mask", "mask", "label_mask") if k in features), None)
    if image_key is None or mask_key is None:
        raise DataError(f"tfds {tfds_info.name}: no image and segmentation-mask features")
    return image_key, mask_key


def pets_trimap_to_classes(trimap):
    """Oxford-IIIT Pet trimap (1 pet, 2 background, 3 border) -> 0 background, 1 pet, 2 border;
    any other value -> 255 (ignore)."""
    trimap = tf.cast(trimap, tf.int32)
    classes = tf.where(trimap == 1, 1, tf.where(trimap == 2, 0, tf.where(trimap == 3, 2, IGNORE_INDEX)))
    return tf.cast(classes, tf.uint8)


def squeeze_mask(mask):
    """(H, W, 1) -> (H, W); (H, W) as it is."""
    if mask.shape.rank == 3:
        mask = mask[..., 0]
    return mask
