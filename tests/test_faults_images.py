"""Image files a careless or hostile folder holds: a decompression bomb (huge dimensions, tiny
file) refused from its header, broken symbolic links counted, phone photos' EXIF orientation."""
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo
from zoo.data import OversizedImage, load_split, read_image
from zoo.errors import DataError
from zoo.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]


def zoo_process(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "zoo.cli", *map(str, args)], env=env, text=True,
                          capture_output=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def write_png_bomb(path, side=15000):
    """A grey PNG of side x side zero pixels: ~220 KB on disk, 675 MB decoded as RGB."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor, row, idat = zlib.compressobj(9), bytes(side + 1), []  # each row: filter byte + pixels
    for _ in range(side):
        idat.append(compressor.compress(row))
    idat.append(compressor.flush())
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", b"".join(idat)) + chunk(b"IEND", b""))
    return path


def write_classes(root, per_class=4, size=8):
    for split in ("train", "test"):
        for c in range(2):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.fromarray(np.full((size, size), 200 * c, np.uint8)).save(folder / f"{i}.png")
    return root


# ------------------------------------------------------------------------------ pixel limit


# `zoo` that writes its own peak memory (VmHWM: this process image's, not the forked parent's
# that getrusage's maxrss carries over exec) to the file named by PEAK_FILE when it exits.
PEAK_DRIVER = """
import atexit, os, sys
def peak():
    with open("/proc/self/status") as status, open(os.environ["PEAK_FILE"], "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
atexit.register(peak)
from zoo.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_png_bomb_in_a_folder_is_one_line_without_decoding_it(tmp_path):
    root = write_classes(tmp_path / "data")
    bomb = write_png_bomb(root / "train" / "class1" / "bomb.png")
    assert bomb.stat().st_size < 1_000_000
    peak = tmp_path / "peak_kib"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "PEAK_FILE": str(peak)}
    proc = subprocess.run([sys.executable, "-c", PEAK_DRIVER, "train", "digits_cnn", "data.source=folder",
                           f"data.path={root}", "train.epochs=1", "data.batch_size=4", "--output",
                           str(tmp_path / "run")], env=env, text=True, capture_output=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"zoo: error: image file {bomb} is 15000x15000 pixels, above data.max_pixels (89,478,485); "
        "raise data.max_pixels to read it")
    # Decoded, the bomb is 675 MB of RGB pixels: decoding it alone peaks at 1.4 GB, training on it more.
    assert int(peak.read_text()) < 1_200_000  # KiB


def test_predict_refuses_a_bomb_and_goes_on(tmp_path):
    root = write_classes(tmp_path / "data")
    code, _, err = zoo_process("train", "digits_cnn", "data.source=folder", f"data.path={root}",
                               "train.epochs=1", "data.batch_size=4", "--output", tmp_path / "run")
    assert code == 0, err
    bomb = write_png_bomb(tmp_path / "bomb.png")
    code, out, err = zoo_process("predict", tmp_path / "run", bomb, root / "test" / "class0" / "0.png",
                                 "--output", tmp_path / "pred")
    assert (f"{bomb}: error: image file {bomb} is 15000x15000 pixels, above --max-pixels (89,478,485); "
            f"raise --max-pixels to read it") in out + err
    assert "0.png" in out
    # zoo predict has no recipe overrides: its option sets the limit.
    small = root / "test" / "class0" / "0.png"
    code, out, err = zoo_process("predict", tmp_path / "run", small, "--max-pixels", "10", "--output", tmp_path / "pred")
    assert code == 2 and f"image file {small} is 8x8 pixels, above --max-pixels (10)" in out + err


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP"])
def test_the_limit_reads_every_format_header(tmp_path, fmt):
    path = tmp_path / f"image.{fmt.lower()}"
    Image.fromarray(np.zeros((37, 53, 3), np.uint8)).save(path, fmt)
    assert read_image(path, max_pixels=37 * 53).shape == (37, 53, 3)
    with pytest.raises(OversizedImage, match=f"image file {path} is 53x37 pixels, above data.max_pixels "
                                             f"\\(1,960\\); raise data.max_pixels"):
        read_image(path, max_pixels=37 * 53 - 1)


def test_the_limit_is_a_recipe_key_every_file_source_applies(tmp_path):
    """data.max_pixels lowered below 8x8: the class-folder, mask and TFRecord sources refuse."""
    classes = write_classes(tmp_path / "classes")
    seg = tmp_path / "seg"
    for split in ("train", "test"):
        for folder in ("images", "masks"):
            (seg / split / folder).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(seg / split / "images" / f"{i}.png")
            Image.fromarray(np.full((8, 8), i, np.uint8)).save(seg / split / "masks" / f"{i}.png")
    with pytest.raises(DataError, match="is 8x8 pixels, above data.max_pixels \\(63\\)"):
        recipe = zoo.load_recipe("shapes_unet", ["data.source=folder", f"data.path={seg}", "data.max_pixels=63"])
        load_split(recipe, get_task("segmentation"), "train")
    from zoo.convert import convert

    tfr = tmp_path / "tfr"
    convert(zoo.load_recipe("digits_cnn", ["data.source=folder", f"data.path={classes}"]), str(tfr), shards=1)
    for source, path in (("folder", classes), ("tfrecord", tfr)):
        recipe = zoo.load_recipe("digits_cnn", [f"data.source={source}", f"data.path={path}", "data.max_pixels=63",
                                                "data.batch_size=4", "train.epochs=1", "train.verbose=0"])
        with pytest.raises(DataError, match="is 8x8 pixels, above data.max_pixels \\(63\\); raise data.max_pixels"):
            zoo.train(recipe, output_dir=tmp_path / f"run_{source}")


# ------------------------------------------------------------------------------ symbolic links


def test_broken_symbolic_links_are_skipped_with_one_warning(tmp_path, capsys):
    classes = write_classes(tmp_path / "classes")
    for c, name in ((0, "dangling.png"), (1, "dangling.png")):
        (classes / "train" / f"class{c}" / name).symlink_to(tmp_path / "nowhere.png")
    (classes / "train" / "class1" / "loop_a.png").symlink_to(classes / "train" / "class1" / "loop_b.png")
    (classes / "train" / "class1" / "loop_b.png").symlink_to(classes / "train" / "class1" / "loop_a.png")
    (classes / "train" / "looping_class").symlink_to(classes / "train" / "looping_class")
    recipe = zoo.load_recipe("digits_cnn", ["data.source=folder", f"data.path={classes}"])
    split = load_split(recipe, get_task("classification"), "train")
    assert split.info.num_examples == 8 and split.info.class_names == ["class0", "class1"]
    assert capsys.readouterr().out.splitlines() == [
        f"warning: skipped 5 broken symbolic link(s) (dangling or in a loop) under {classes / 'train'}"]
    seg = tmp_path / "seg" / "train"
    for folder in ("images", "masks"):
        (seg / folder).mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(seg / "images" / f"{i}.png")
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(seg / "masks" / f"{i}.png")
    (seg / "images" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    recipe = zoo.load_recipe("shapes_unet", ["data.source=folder", f"data.path={seg.parent}"])
    assert load_split(recipe, get_task("segmentation"), "train").info.num_examples == 2
    assert capsys.readouterr().out.splitlines() == [
        f"warning: skipped 1 broken symbolic link(s) (dangling or in a loop) under {seg / 'images'}"]


# ------------------------------------------------------------------------------ EXIF orientation


def marked_image():
    """24x40 with a white top-left corner and a green right edge: every turn moves them."""
    image = np.zeros((24, 40, 3), np.uint8)
    image[:8, :8] = 255
    image[:, -4:, 1] = 200
    return image


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation_is_applied_as_pillow_shows_it(tmp_path, orientation):
    from PIL import ImageOps

    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(marked_image()).save(path, exif=exif, quality=95)
    with Image.open(path) as img:
        shown = np.asarray(ImageOps.exif_transpose(img).convert("RGB"), np.float32)
    decoded = read_image(path).numpy().astype(np.float32)  # `zoo predict`'s reader, training's decoder
    assert decoded.shape == shown.shape
    assert np.abs(decoded - shown).mean() < 2  # the two JPEG decoders differ by a few levels


def test_little_endian_exif_and_every_source_agree(tmp_path):
    """A rotated phone photo (orientation 6, "II" byte order) in a class folder trains as shown."""
    plain = tmp_path / "plain.jpg"
    Image.fromarray(marked_image()).save(plain, quality=95)
    directory = b"II*\0" + struct.pack("<IH", 8, 1) + struct.pack("<HHIHH", 0x0112, 3, 1, 6, 0) + b"\0" * 4
    app1 = b"Exif\0\0" + directory
    rotated = b"\xff\xd8\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + plain.read_bytes()[2:]
    root = write_classes(tmp_path / "data")
    (root / "train" / "class0" / "phone.jpg").write_bytes(rotated)
    expected = np.rot90(read_image(plain).numpy(), 3)  # orientation 6: turned 90 degrees clockwise
    np.testing.assert_array_equal(read_image(root / "train" / "class0" / "phone.jpg").numpy(), expected)
    recipe = zoo.load_recipe("digits_cnn", ["data.source=folder", f"data.path={root}"])
    split = load_split(recipe, get_task("classification"), "train")
    shapes = {tuple(example["image"].shape) for example in split.dataset}
    assert shapes == {(8, 8, 3), (40, 24, 3)}


# ------------------------------------------------------------------------------ mask pixel limit


@pytest.mark.parametrize("side", [12000,  # above Pillow's own limit: before, its warning came first
                                  15000])  # above twice that: before, Pillow's error without the key
def test_an_oversized_mask_is_the_zoos_one_line_without_pillows_warning(tmp_path, side):
    seg = tmp_path / "seg"
    for split in ("train", "test"):
        for folder in ("images", "masks"):
            (seg / split / folder).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(seg / split / "images" / "0.png")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(seg / split / "masks" / "0.png")
    mask = write_png_bomb(seg / "train" / "masks" / "0.png", side)
    code, _, err = zoo_process("train", "shapes_unet", "data.source=folder", f"data.path={seg}",
                               "train.epochs=1", "--output", tmp_path / "run")
    assert code == 2, err
    assert "DecompressionBomb" not in err and "Traceback" not in err
    assert [line for line in err.splitlines() if line.strip()][-1:] == [
        f"zoo: error: image file {mask} is {side}x{side} pixels, above data.max_pixels (89,478,485); "
        "raise data.max_pixels to read it"]


def test_an_oversized_image_header_is_read_without_pillows_check(tmp_path, recwarn):
    from zoo.tasks.segmentation.sources import image_size

    limit = Image.MAX_IMAGE_PIXELS
    assert image_size(write_png_bomb(tmp_path / "big.png", 15000)) == (15000, 15000)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
    assert Image.MAX_IMAGE_PIXELS == limit  # lifted for that call only
