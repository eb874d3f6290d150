import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli

from zoo.cli import main
from zoo.data import IMAGE_EXTENSIONS

ROOT = Path(__file__).resolve().parents[1]




def test_list_and_recipes(capsys):
    code, out, _ = run_cli(capsys, "list", "resnet*", "--task", "classification")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert "resnet20" in names and all(n.startswith("resnet") for n in names)
    code, out, _ = run_cli(capsys, "recipes")
    assert code == 0 and "digits_cnn" in out and "cifar10_resnet56" in out
    code, out, _ = run_cli(capsys, "recipes", "cifar*")
    assert "digits_cnn" not in out
    code, out, _ = run_cli(capsys, "recipes", "--task", "video")
    rows = [line.split() for line in out.splitlines()[1:]]  # after the header
    assert {row[0] for row in rows} == {"moving_shapes_cnn_lstm", "moving_shapes_frame_avg", "ucf101_cnn_lstm"}
    assert all(row[1] == "video" for row in rows)


@pytest.mark.parametrize("args, message", [
    (["train", "no_such_recipe"], "unknown recipe 'no_such_recipe'"),
    (["train", "digits_cnn", "data.image_size=[32]"], "data.image_size: expected two positive integers, got [32]"),
    (["train", "digits_cnn", "model.name=resnet2O"], "unknown model 'resnet2O'"),
    (["train", "digits_cnn", "data.source=folder", "data.path=/no/such/dir"], "dataset folder not found: /no/such/dir/train"),
    (["evaluate", "digits_cnn", "--weights", "/no/such/model.keras"], "file not found: /no/such/model.keras"),
    (["predict", "/no/such/run", "x.png"], "no trained model at"),
    # options and KEY=VALUE overrides / inputs in any order
    (["train", "digits_cnn", "--resume", "train.epochs=-1"], "train.epochs: expected a positive number, got -1"),
    (["evaluate", "digits_cnn", "--weights", "w.keras", "data.image_size=[32]"], "data.image_size: expected two"),
    (["predict", "/no/such/run", "x.png", "--output", "out", "y.png"], "no trained model at"),
])
def test_user_errors_are_one_line_with_status_2(capsys, tmp_path, args, message):
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("zoo: error: ") and message in err
    assert "Traceback" not in err + out


def test_train_evaluate_predict_from_the_command_line(capsys, tmp_path):
    run_dir = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "digits_cnn", "train.epochs=3", "--output", str(run_dir),
                             "train.verbose=0")
    assert code == 0, err
    trained = json.loads((run_dir / "metrics.json").read_text())
    code, out, err = run_cli(capsys, "evaluate", "digits_cnn", "--weights", str(run_dir / "model.keras"))
    assert code == 0, err
    evaluated = json.loads(out.strip().splitlines()[-1])  # last stdout line is the JSON
    assert evaluated == {key: trained[key] for key in evaluated}

    from PIL import Image
    import numpy as np

    image = tmp_path / "seven.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    code, out, err = run_cli(capsys, "predict", str(run_dir), "--output", str(tmp_path / "pred"), str(image))
    assert code == 0, err
    assert out.startswith(f"{image}: ") and len(out.strip().split(", ")) == 5  # top-5 labels

    # An existing run is never overwritten without --resume.
    code, _, err = run_cli(capsys, "train", "digits_cnn", "--output", str(run_dir))
    assert code == 2 and "already holds a run" in err


def test_unknown_options_stay_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "digits_cnn", "train.epochs=1", "--epochs", "3", "train.verbose=0"])
    assert exit_info.value.code == 2 and "unrecognized arguments: --epochs" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["list", "resnet*", "--task", "classification", "extra"])
    assert exit_info.value.code == 2 and "unrecognized arguments: extra" in capsys.readouterr().err


def untrained_run(run_dir, recipe, class_names, *overrides):
    """A run directory holding an untrained model: enough for `zoo predict`, no training."""
    import zoo
    from zoo.data import DatasetInfo
    from zoo.tasks import get_task

    recipe = zoo.load_recipe(recipe, overrides)
    args = get_task(recipe.task).model_args(recipe, DatasetInfo(len(class_names), class_names))
    model = zoo.create_model(recipe.model.name, **args, **recipe.model.params)
    run_dir.mkdir(parents=True)
    (run_dir / "recipe.yaml").write_text(recipe.to_yaml())
    (run_dir / "dataset.json").write_text(json.dumps({"class_names": class_names}))
    model.save(run_dir / "model.keras")
    return run_dir


def write_images(folder, names, size=(8, 8)):
    """Random RGB pictures; names ending in `.bad.png` get bytes that are no image."""
    from PIL import Image
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        if name.endswith(".bad.png"):
            (folder / name).write_bytes(b"not a png")
        else:
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / name)
    return [str(folder / name) for name in names]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    return untrained_run(tmp_path_factory.mktemp("digits") / "run", "digits_cnn", [str(d) for d in range(10)])


def test_predict_a_folder_with_a_corrupt_image(capsys, tmp_path, digits_run):
    a, b, c = write_images(tmp_path / "pics", ["a.png", "b.bad.png", "c.jpg"])
    (tmp_path / "pics" / "notes.txt").write_text("not an input")
    (tmp_path / "pics" / "sub").mkdir()
    [d] = write_images(tmp_path / "more", ["d.png"])
    code, out, err = run_cli(capsys, "predict", str(digits_run), str(tmp_path / "pics"), d)
    assert code == 2
    lines = out.splitlines()
    assert [line.split(": ")[0] for line in lines] == [a, b, c, d]  # input order, folder sorted
    assert lines[1] == f"{b}: error: cannot read image file: {b}"
    assert all(len(line.split(", ")) == 5 for line in lines[::2] + lines[3:])  # good ones predicted
    assert err == f"zoo: error: 1 of 4 inputs could not be read (first: {b})\n"

    (tmp_path / "empty").mkdir()
    code, out, err = run_cli(capsys, "predict", str(digits_run), d, str(tmp_path / "empty"))
    assert code == 2 and out == ""
    assert err == f"zoo: error: no image files ({', '.join(IMAGE_EXTENSIONS)}) in {tmp_path / 'empty'}\n"


def test_predict_with_a_garbage_model_file(capsys, tmp_path, digits_run):
    (tmp_path / "recipe.yaml").write_text((digits_run / "recipe.yaml").read_text())
    (tmp_path / "model.keras").write_bytes(b"not a zip archive")
    code, out, err = run_cli(capsys, "predict", str(tmp_path), "x.png")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"zoo: error: {tmp_path / 'model.keras'} is not a valid Keras model file")


def test_predict_yields_each_batch_before_reading_the_next(tmp_path, digits_run, monkeypatch):
    """Images of one size go through the serving graph in batches of `BATCH_SIZE`; each batch's
    predictions come out before the next input is read, and a new size starts a new batch."""
    from zoo.predict import iter_predict
    from zoo.predictor import BATCH_SIZE
    from zoo.tasks import get_task

    paths = write_images(tmp_path, [f"{i:02d}.png" for i in range(BATCH_SIZE + 2)])
    paths += write_images(tmp_path / "big", ["x.png"], size=(12, 10))
    task, read = get_task("classification"), []
    original = task.read_input
    monkeypatch.setattr(task, "read_input", lambda path, *limit: read.append(path) or original(path, *limit))
    predictions = iter_predict(digits_run, paths)
    first = next(predictions)
    assert first["input"] == paths[0] and len(first["top_k"]) == 5 and read == paths[:BATCH_SIZE + 1]
    rest = [p["input"] for p in predictions]
    assert rest == paths[1:] and read == paths


def test_predict_detection_folder_writes_one_predictions_json(capsys, tmp_path):
    run = untrained_run(tmp_path / "run", "shapes_retinanet", ["circle", "square", "triangle"],
                        "model.backbone=simple_cnn", "model.min_level=2", "model.max_level=3",
                        "model.anchor_size=2.0", "model.fpn_channels=32", "data.image_size=[64, 64]")
    a, b, c = write_images(tmp_path / "pics", ["a.png", "b.bad.png", "c.png"], size=(48, 64))
    code, out, err = run_cli(capsys, "predict", str(run), "--output", str(tmp_path / "pred"), str(tmp_path / "pics"))
    assert code == 2 and err == f"zoo: error: 1 of 3 inputs could not be read (first: {b})\n"
    lines = out.splitlines()
    assert f"{b}: error: cannot read image file: {b}" in lines and lines[-1].startswith("all detections")
    assert [line.split(": ")[0] for line in lines if "drawn to" in line] == [a, c]
    results = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert {r["file_name"] for r in results} <= {a, c}


def test_predict_video_folders(capsys, tmp_path):
    run = untrained_run(tmp_path / "run", {"task": "video", "model": {"name": "cnn_lstm"},
                                           "data": {"source": "synthetic", "name": "moving_shapes",
                                                    "image_size": [16, 16], "num_frames": 4}},
                        ["left", "right"], "model.filters=[4,8]", "model.rnn_units=8", "model.frame_features=8")
    clips = tmp_path / "clips"
    for clip in ("c0", "c1", "c2"):
        write_images(clips / clip, [f"f{t}.png" for t in range(3)], size=(12, 12))
    (clips / "c1" / "f1.png").write_bytes(b"not a png")
    code, out, err = run_cli(capsys, "predict", str(run), str(clips), str(clips / "c2"))
    lines = out.splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(clips / c) for c in ("c0", "c1", "c2", "c2")]
    assert "corrupt frame file" in lines[1] and all("left" in line for line in lines[::2] + lines[3:])
    assert code == 2 and err == f"zoo: error: 1 of 4 inputs could not be read (first: {clips / 'c1'})\n"

    (tmp_path / "nothing").mkdir()
    code, _, err = run_cli(capsys, "predict", str(run), str(tmp_path / "nothing"))
    assert code == 2 and "no frame images, clip folders or video files in" in err


def test_console_script_exit_status(tmp_path):
    """The installed entry point (or `python -m zoo.cli`) exits 2 on a bad recipe, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "zoo.cli", "train", "digits_cnn", "train.epochs=-1"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == "zoo: error: train.epochs: expected a positive number, got -1"
    assert "Traceback" not in done.stderr


def test_output_cut_short_by_a_pipe_reader_is_no_error():
    """`zoo list | true`: the reader leaves before zoo writes; that is no error."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {sys.executable} -m zoo.cli list | true"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and "zoo: error" not in done.stderr and "BrokenPipe" not in done.stderr
