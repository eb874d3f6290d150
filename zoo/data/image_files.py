"""Image files read without trusting them: the size an encoded image's header gives (checked
against data.max_pixels before decoding) and a JPEG's EXIF orientation, as tf ops (inside tf.data,
and eagerly for `zoo predict`), so training, evaluation and prediction agree.

`header` reads both in one branch per format (a JPEG's EXIF is parsed only in its branch)."""
from __future__ import annotations

import re

from zoo.lazy import tf

MARKER = "image above data.max_pixels"  # pixel_check's assertion: [MARKER limit] [path] [width] [height]
OVERSIZED = re.compile(r"\[image above data\.max_pixels (\d+)\] \[(.*)\] \[(\d+)\] \[(\d+)\]")
JPEG, PNG = b"\xff\xd8", b"\x89PNG"
HEADER = 32  # bytes read for the other formats' sizes; byte 31 is always 0 (unused high bytes point there)


def _field(first: int, size: int, divisor: int = 1, modulus: int = 2 ** 32, add: int = 0):
    """A little-endian header field of `size` bytes from `first`, then // divisor % modulus + add:
    (its byte positions, least significant first, padded to 4; (divisor, modulus, add))."""
    return list(range(first, first + size)) + [HEADER - 1] * (4 - size), (divisor, modulus, add)


# GIF, BMP and WebP: a signature (bytes at an offset), then the height and width fields.
OTHER_FORMATS = [
    ((0, b"GIF8"), _field(8, 2), _field(6, 2)),
    ((0, b"BM"), _field(22, 4), _field(18, 4)),  # a negative height: a top-down bitmap
    ((12, b"VP8X"), _field(27, 3, add=1), _field(24, 3, add=1)),
    ((12, b"VP8L"), _field(21, 4, divisor=2 ** 14, modulus=2 ** 14, add=1), _field(21, 4, modulus=2 ** 14, add=1)),
    ((12, b"VP8 "), _field(28, 2, modulus=2 ** 14), _field(26, 2, modulus=2 ** 14))]


def _other_size(contents):
    """(height, width) of a GIF, BMP or WebP header; (0, 0) for a format not known here."""
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(contents, 0, HEADER - 1), "\0" * HEADER]), 0, HEADER)
    b = tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)
    where = [[at + k if k < len(sig) else HEADER - 1 for k in range(4)] for (at, sig), _, _ in OTHER_FORMATS]
    expected = [list(sig.ljust(4, b"\0")) for (_, sig), _, _ in OTHER_FORMATS]
    match = tf.reduce_all(tf.gather(b, where) == expected, -1)
    fields = [field for _, height, width in OTHER_FORMATS for field in (height, width)]
    values = tf.reduce_sum(tf.gather(b, [positions for positions, _ in fields]) * [1, 2 ** 8, 2 ** 16, 2 ** 24], -1)
    values = tf.where(values >= 2 ** 31, 2 ** 32 - values, values)  # a signed field's size (BMP)
    divisor, modulus, add = ([arithmetic[k] for _, arithmetic in fields] for k in range(3))
    sizes = tf.reshape(values // divisor % modulus + add, [-1, 2])
    return tf.where(tf.reduce_any(match), sizes[tf.argmax(tf.cast(match, tf.int32))], 0)


def header(contents):
    """[height, width, EXIF orientation] int64 from an encoded image's header, without decoding it:
    JPEG (orientation 1..8, `exif_orientation`), PNG, GIF, BMP, WebP (orientation 1; height and
    width 0 for a format not known here or a header cut short: the decoder then refuses it)."""
    start = tf.strings.substr(contents, 0, 4)

    def jpeg():
        return tf.concat([tf.cast(tf.image.extract_jpeg_shape(contents)[:2], tf.int64), [exif_orientation(contents)]], 0)

    def png():  # IHDR: width, height as big-endian 32-bit integers from byte 16 (0 past the end)
        head = tf.strings.join([tf.strings.substr(contents, 0, 24), "\0" * 24])
        size = tf.io.decode_raw(tf.strings.substr(head, 16, 8), tf.int32, little_endian=False)
        return tf.concat([tf.cast(tf.reverse(size, [0]), tf.int64), [1]], 0)

    kind = tf.where(tf.strings.substr(start, 0, 2) == JPEG, 0, tf.where(start == PNG, 1, 2))
    return tf.switch_case(kind, [jpeg, png, lambda: tf.concat([_other_size(contents), [1]], 0)])


def pixel_check(size, max_pixels: int, path=None):
    """An assertion that an image's `header` `size` gives at most `max_pixels` pixels, naming the
    image file `path` (a string tensor; None: a TFRecord example's image) when it fails: its
    message is made only then, by `oversized_image`."""
    return tf.debugging.Assert(size[0] * size[1] <= max_pixels,
                               [f"{MARKER} {max_pixels}", "" if path is None else path, size[1], size[0]])


def oversized_line(path, width, height, max_pixels: int, key: str = "data.max_pixels") -> str:
    what = f"file {path}" if path else "in a TFRecord example"
    return f"image {what} is {width}x{height} pixels, above {key} ({max_pixels:,}); raise {key} to read it"


def oversized_image(error) -> str | None:
    """The one line of an image refused by `pixel_check` inside tf.data, from the error it raised
    (or None)."""
    match = OVERSIZED.search(getattr(error, "message", str(error)))
    return match and oversized_line(match[2], match[3], match[4], int(match[1]))


EXIF_SEARCH = 1024  # a JPEG's Exif block (APP1) follows its start, or a JFIF APP0, within these bytes
EXIF_READ = 4096  # its first directory (usually at its start) lies within these bytes, else it is not read
ENTRIES = 64  # directory entries searched for the orientation tag


def exif_orientation(contents):
    """The EXIF orientation tag (0x0112, 1..8) of a JPEG's bytes; 1 (as stored) without one."""
    parts = tf.strings.split(tf.strings.substr(contents, 0, EXIF_SEARCH), b"Exif\0\0", maxsplit=1)
    tiff = tf.minimum(tf.strings.length(parts[0]) + 6, tf.strings.length(contents))  # the TIFF header
    b = tf.io.decode_raw(tf.strings.join([tf.strings.substr(contents, tiff, EXIF_READ), "\0" * 16]), tf.uint8)
    end = tf.cast(tf.size(b), tf.int64) - 16  # reads are clipped to the data, plus zeros
    little = tf.equal(b[0], ord("I"))  # "II": little-endian, "MM": big-endian

    def number(at, size):  # unsigned integer(s) of `size` bytes at offset(s) `at` in the TIFF data
        digits = tf.gather(b, tf.clip_by_value(at, 0, end)[..., None] + tf.range(size, dtype=tf.int64))
        weights = 256 ** tf.range(size, dtype=tf.int64)
        return tf.reduce_sum(tf.cast(digits, tf.int64) * tf.where(little, weights, tf.reverse(weights, [0])), -1)

    directory = number(tf.constant(4, tf.int64), 4)
    entries = directory + 2 + 12 * tf.range(ENTRIES, dtype=tf.int64)  # tag, type, count, value: 12 bytes
    tagged = (number(entries, 2) == 0x0112) & (tf.range(ENTRIES, dtype=tf.int64) < number(directory, 2))
    value = number(entries[tf.argmax(tf.cast(tagged, tf.int32))] + 8, 2)
    found = (tf.size(parts) == 2) & tf.reduce_any(tagged) & (value >= 1) & (value <= 8)
    return tf.where(found, value, 1)


def oriented(image, orientation):
    """An image as stored -> as shown, for EXIF orientation 1..8 (as Pillow's
    ImageOps.exif_transpose): a transpose (5-8), then a flip of the rows (3, 4, 7, 8) and of the
    columns (2, 3, 6, 7)."""
    rows = tf.reduce_any(orientation == [3, 4, 7, 8])
    columns = tf.reduce_any(orientation == [2, 3, 6, 7])
    image = tf.transpose(image, tf.where(orientation >= 5, [1, 0, 2], [0, 1, 2]))
    return tf.reverse(image, tf.boolean_mask([0, 1], tf.stack([rows, columns])))


def as_shown(image, orientation):
    """A decoded image turned as its EXIF `orientation` (from `header`) says it is shown."""
    image = tf.cond(orientation == 1, lambda: image, lambda: oriented(image, orientation))
    image.set_shape([None, None, 3])
    return image
