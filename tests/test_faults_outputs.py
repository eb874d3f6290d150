"""Where the zoo writes what the user named: `zoo predict` gives every input its own files,
`zoo export` replaces only its own earlier exports and sweeps what killed exports left, and an
`--output` that cannot be written (a file in the way, a read-only or full disk) is one line
naming it, exit 2, in train, export and predict.

Read-only and full disks are real: tmpfs mounts (`mount -o ro`, `-o size=`), which need root
(as in CI); without it those tests are skipped."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from zoo.data.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]


def save_image(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)
    return str(path)


def json_lines(out):
    return [json.loads(line) for line in out.splitlines()]


def one_error_line(code, err, message):
    assert code == 2 and err == f"zoo: error: {message}\n", err


@pytest.fixture
def mount_tmpfs(tmp_path):
    """mount_tmpfs(name, options) -> a tmpfs folder under tmp_path, unmounted at the end; the
    test is skipped where mounting is not permitted (not root)."""
    mounted = []

    def mount(name, options):
        folder = tmp_path / name
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=True)


def fill(folder: Path):
    """Write into `folder` until its disk is full."""
    with open(folder / "filler", "wb", buffering=0) as f:
        with pytest.raises(OSError, match="No space left"):
            while True:
                f.write(b"\0" * 4096)


# ----------------------------------------------------------- predict: one set of files per input


def test_output_names_mirror_folders_and_keep_colliding_extensions(tmp_path):
    from zoo.predict import OutputFiles

    inputs = ["a/0.png", "b/0.png", "b/x/1.png", "c/det.png", "c/det.jpg", "c/det.jpg.png", "c/other.png",
              "a/0.png", "./a/0.png"]
    files = OutputFiles(tmp_path / "out", inputs)
    names = {path: str(files.path(path, "mask").relative_to(tmp_path / "out")) for path in inputs}
    assert names == {"a/0.png": "a/0_mask.png", "b/0.png": "b/0_mask.png", "b/x/1.png": "b/x/1_mask.png",
                     "c/det.png": "c/det.png_mask.png", "c/det.jpg": "c/det.jpg_mask.png",
                     "c/det.jpg.png": "c/det.jpg.png_mask.png", "c/other.png": "c/other_mask.png",
                     "./a/0.png": "a/0_mask.png"}  # one file, one name
    one_folder = OutputFiles(tmp_path / "out", ["in/a.png", "in/b.png"])
    assert one_folder.path("in/a.png", "detections") == tmp_path / "out" / "a_detections.png"


def test_segmentation_inputs_of_one_name_in_two_folders_get_their_own_masks(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    images = {"a/0.png": generate("shapes_segmentation", 0, 5, (64, 64))["image"],
              "b/0.png": generate("shapes_segmentation", 1, 5, (64, 64))["image"]}
    for path, image in images.items():
        save_image(tmp_path / path, image)
    code, out, err = run_cli(capsys, "predict", "unet_small.shapes", *images, "--json", "--output", "p")
    assert code == 0, err
    rows = json_lines(out)
    assert [r["input"] for r in rows] == list(images)
    assert [r["mask"] for r in rows] == ["p/a/0_mask.png", "p/b/0_mask.png"]
    assert [r["picture"] for r in rows] == ["p/a/0_segmentation.png", "p/b/0_segmentation.png"]
    masks = [np.asarray(Image.open(r["mask"])) for r in rows]
    assert not np.array_equal(*masks)  # two shape pictures, two masks


def test_detection_inputs_of_one_stem_get_their_own_pictures_and_json_rows(tmp_path, capsys):
    image = np.asarray(Image.fromarray(generate("shapes_detection", 5, 5, (128, 128))["image"]).resize((256, 256)))
    paths = [save_image(tmp_path / "in" / "det.png", image), save_image(tmp_path / "in" / "det.jpg", image[:, ::-1])]
    out_dir = tmp_path / "out"
    code, out, err = run_cli(capsys, "predict", "retinanet_small.shapes", *paths, "--json", "--output", out_dir)
    assert code == 0, err
    *rows, last = json_lines(out)
    assert [r["picture"] for r in rows] == [str(out_dir / "det.png_detections.png"),
                                            str(out_dir / "det.jpg_detections.png")]
    assert all(os.path.isfile(r["picture"]) for r in rows)
    results = json.loads((out_dir / "predictions.json").read_text())
    assert last["message"].endswith(str(out_dir / "predictions.json"))
    assert {r["file_name"] for r in results} == set(paths)  # each input named, the mirrored one too
    for path, row in zip(paths, rows):
        assert len([r for r in results if r["file_name"] == path and r["score"] >= row["threshold"]]) >= \
            len(row["objects"]) >= 2


# ----------------------------------------------------------------- export: its own files only


def test_export_leaves_a_folder_it_did_not_make_alone(tmp_path, capsys):
    user = tmp_path / "userdata" / "digits_cnn"
    user.mkdir(parents=True)
    (user / "README.txt").write_text("precious")
    code, _, err = run_cli(capsys, "export", "digits_cnn.digits", "--format", "saved_model",
                           "--output", tmp_path / "userdata")
    one_error_line(code, err, f"{user} exists and is no export of the zoo (digits_cnn.json does not say so): "
                              "move it away or choose another --output; it was left as it is")
    assert [p.name for p in user.iterdir()] == ["README.txt"] and (user / "README.txt").read_text() == "precious"
    assert sorted(p.name for p in user.parent.iterdir()) == ["digits_cnn"]

    (tmp_path / "userdata" / "digits_cnn.onnx.json").write_text('{"mine": 1}')  # a file of the user's
    code, _, err = run_cli(capsys, "export", "digits_cnn.digits", "--format", "onnx", "--output", tmp_path / "userdata")
    assert code == 2 and "digits_cnn.onnx.json exists and is no export of the zoo" in err
    assert (tmp_path / "userdata" / "digits_cnn.onnx.json").read_text() == '{"mine": 1}'


def test_export_replaces_its_own_earlier_export(tmp_path, capsys):
    for _ in range(2):
        code, out, err = run_cli(capsys, "export", "digits_cnn.digits", "--format", "saved_model", "--output", tmp_path)
        assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits_cnn", "digits_cnn.json"]
    assert json.loads((tmp_path / "digits_cnn.json").read_text())["format"] == "saved_model"


# Runs `zoo export` whose ONNX writer kills its own process once the temporary file is written.
KILLED_EXPORT = """
import os, signal, sys
from zoo import export
write = export.WRITERS["onnx"]
def write_then_die(serving, path, dtype, calibration):
    write(serving, path, dtype, calibration)
    os.kill(os.getpid(), signal.SIGKILL)
export.WRITERS["onnx"] = write_then_die
from zoo.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_next_export_sweeps_what_killed_exports_left_not_what_a_live_one_writes(tmp_path, capsys):
    driver = tmp_path / "driver.py"
    driver.write_text(KILLED_EXPORT)
    out_dir = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    killed = subprocess.Popen([sys.executable, str(driver), "export", "digits_cnn.digits", "--format", "onnx",
                               "--output", str(out_dir)], env=env, stderr=subprocess.PIPE, text=True)
    assert killed.wait(timeout=300) == -signal.SIGKILL, killed.stderr.read()
    [left] = out_dir.iterdir()
    assert left.name == f".digits_cnn.{killed.pid}.tmp.onnx" and left.stat().st_size > 10_000
    live_writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        live = out_dir / f".digits_cnn.{live_writer.pid}.tmp.onnx"  # a concurrent export's, being written
        live.write_bytes(b"half")
        (out_dir / ".notes.tmp").write_text("the user's")
        code, _, err = run_cli(capsys, "export", "digits_cnn.digits", "--format", "litert", "--output", out_dir)
        assert code == 0, err
        assert sorted(p.name for p in out_dir.iterdir()) == [
            ".digits_cnn.{}.tmp.onnx".format(live_writer.pid), ".notes.tmp", "digits_cnn.tflite",
            "digits_cnn.tflite.json"]
    finally:
        live_writer.kill()
        live_writer.wait()


# ------------------------------------------------------- an --output that cannot be written


def test_a_file_in_the_way_of_output_is_one_line_in_train_export_and_predict(tmp_path, capsys):
    in_the_way = tmp_path / "some_file"
    in_the_way.write_text("x")
    image = save_image(tmp_path / "in.png", generate("shapes_segmentation", 0, 5, (64, 64))["image"])
    commands = [["train", "digits_cnn", "train.epochs=1", "train.verbose=0"],
                ["export", "digits_cnn.digits", "--format", "onnx"],
                ["predict", "unet_small.shapes", image]]
    for command in commands:
        code, _, err = run_cli(capsys, *command, "--output", in_the_way)
        one_error_line(code, err, f"cannot write {in_the_way}: it is a file, not a folder")
        code, _, err = run_cli(capsys, *command, "--output", in_the_way / "x")
        one_error_line(code, err, f"cannot write {in_the_way / 'x'}: Not a directory")
    assert in_the_way.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "some_file"]


def test_a_read_only_output_is_one_line_in_train_export_and_predict(mount_tmpfs, tmp_path, capsys):
    read_only = mount_tmpfs("read_only", "size=1m,ro")
    image = save_image(tmp_path / "in.png", generate("shapes_segmentation", 0, 5, (64, 64))["image"])
    code, _, err = run_cli(capsys, "train", "digits_cnn", "train.epochs=1", "train.verbose=0", "--output", read_only)
    one_error_line(code, err, f"cannot write {read_only}: Read-only file system")
    code, _, err = run_cli(capsys, "train", "digits_cnn", "train.epochs=1", "train.verbose=0",
                           "--output", read_only / "run")
    one_error_line(code, err, f"cannot write {read_only / 'run'}: Read-only file system")
    code, _, err = run_cli(capsys, "export", "digits_cnn.digits", "--format", "onnx", "--output", read_only)
    one_error_line(code, err, f"cannot write {read_only / 'digits_cnn.onnx'}: Read-only file system")
    code, out, err = run_cli(capsys, "predict", "unet_small.shapes", image, "--output", read_only)
    one_error_line(code, err, f"cannot write {read_only / 'in_segmentation.png'}: Read-only file system")


def test_a_full_disk_is_one_line_naming_the_file_in_export_and_predict(mount_tmpfs, tmp_path, capsys):
    full = mount_tmpfs("full", "size=48k")
    code, _, err = run_cli(capsys, "export", "digits_cnn.digits", "--format", "saved_model", "--output", full)
    one_error_line(code, err, f"cannot write {full / 'digits_cnn'}: No space left on device")
    assert list(full.iterdir()) == []  # the temporary export is gone
    fill(full)
    image = save_image(tmp_path / "in.png", generate("shapes_segmentation", 0, 5, (64, 64))["image"])
    code, _, err = run_cli(capsys, "predict", "unet_small.shapes", image, "--output", full / "p")
    one_error_line(code, err, f"cannot write {full / 'p' / 'in_segmentation.png'}: No space left on device")
    assert list((full / "p").iterdir()) == []  # no half-written picture
