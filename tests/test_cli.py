import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_and_recipes(capsys):
    code, out, _ = run_cli(capsys, "list", "resnet*", "--task", "classification")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert "resnet20" in names and all(n.startswith("resnet") for n in names)
    code, out, _ = run_cli(capsys, "recipes")
    assert code == 0 and "digits_cnn" in out and "cifar10_resnet56" in out
    code, out, _ = run_cli(capsys, "recipes", "cifar*")
    assert "digits_cnn" not in out


@pytest.mark.parametrize("args, message", [
    (["train", "no_such_recipe"], "unknown recipe 'no_such_recipe'"),
    (["train", "digits_cnn", "data.image_size=[32]"], "data.image_size: expected two positive integers, got [32]"),
    (["train", "digits_cnn", "model.name=resnet2O"], "unknown model 'resnet2O'"),
    (["train", "digits_cnn", "data.source=folder", "data.path=/no/such/dir"], "dataset folder not found: /no/such/dir/train"),
    (["evaluate", "digits_cnn", "--weights", "/no/such/model.keras"], "weights file not found"),
    (["predict", "/no/such/run", "x.png"], "no trained model at"),
])
def test_user_errors_are_one_line_with_status_2(capsys, tmp_path, args, message):
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("zoo: error: ") and message in err
    assert "Traceback" not in err + out


def test_train_evaluate_predict_from_the_command_line(capsys, tmp_path):
    run_dir = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "digits_cnn", "train.epochs=3", "train.verbose=0",
                             "--output", str(run_dir))
    assert code == 0, err
    trained = json.loads((run_dir / "metrics.json").read_text())
    code, out, err = run_cli(capsys, "evaluate", "digits_cnn", "--weights", str(run_dir / "model.keras"))
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == trained  # last stdout line is the JSON

    from PIL import Image
    import numpy as np

    image = tmp_path / "seven.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    code, out, err = run_cli(capsys, "predict", str(run_dir), str(image))
    assert code == 0, err
    assert out.startswith(f"{image}: ") and len(out.strip().split(", ")) == 5  # top-5 labels

    # An existing run is never overwritten without --resume.
    code, _, err = run_cli(capsys, "train", "digits_cnn", "--output", str(run_dir))
    assert code == 2 and "already holds a run" in err


def test_console_script_exit_status(tmp_path):
    """The installed entry point (or `python -m zoo.cli`) exits 2 on a bad recipe, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "zoo.cli", "train", "digits_cnn", "train.epochs=-1"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == "zoo: error: train.epochs: expected a positive number, got -1"
    assert "Traceback" not in done.stderr
